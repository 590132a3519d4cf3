"""The structural facts the benchmark figures rest on; no timing is asserted here.

A benchmark run shows how fast things are on one machine on one day; these
tests pin down why they can be fast: which modules get imported, which
metadata files get read, that the drain runs its stops at once, and that the
environments and the harness measure what they claim to.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import importlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import importlib_metadata
import pytest

import bgservice_core
from benchmarks.credit_gate import fill_sqlite, slug
from benchmarks.environments import (
    BACKEND_GROUP,
    Environment,
    Shape,
    backend_package,
    generate,
)
from benchmarks.harness import (
    REPORT_VARIABLE,
    Command,
    Sample,
    Spawner,
    Summary,
    interleaved,
)
from benchmarks.rows import paired_ratio
from bgservice_core import _discovery

ROOT = Path(__file__).resolve().parent.parent
CHILDREN = ROOT / "benchmarks" / "children"
BGSERVICE = Path(sys.executable).parent / "bgservice"


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    """Three hundred backends among fifty unrelated distributions."""
    site = tmp_path_factory.mktemp("bench") / "site"
    return generate(site, Shape(backends=300, unrelated=50))


def run_child(
    argv: list[str], site: Path | None, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run a child with ``site`` on its path; return it and the modules it reported."""
    report = tmp_path / "report.txt"
    variables = {**os.environ, REPORT_VARIABLE: str(report)}
    variables.pop("PYTHONPATH", None)
    if site is not None:
        variables["PYTHONPATH"] = str(site)
    completed = subprocess.run(
        argv, capture_output=True, text=True, env=variables, check=False, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    lines = report.read_text().splitlines() if report.exists() else []
    return completed, [line.split()[1] for line in lines if line.startswith("module ")]


def backend_modules(modules: list[str]) -> list[str]:
    prefix = backend_package(0).rstrip("0")
    return [module for module in modules if module.startswith(prefix)]


# -- the generated environments -----------------------------------------------


def test_every_distribution_is_laid_out_as_an_installer_leaves_it(
    environment: Environment,
) -> None:
    """Each dist-info has METADATA, WHEEL, INSTALLER and a RECORD that matches."""
    dist_infos = sorted(environment.site.glob("*.dist-info"))
    assert len(dist_infos) == 350

    for dist_info in dist_infos:
        assert {"METADATA", "WHEEL", "INSTALLER", "RECORD"} <= {
            path.name for path in dist_info.iterdir()
        }
        rows = list(csv.reader((dist_info / "RECORD").read_text().splitlines()))
        for path, digest, size in rows:
            content = (environment.site / path).read_bytes()
            if digest:
                expected = hashlib.sha256(content).digest()
                encoded = base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
                assert (digest, size) == (f"sha256={encoded}", str(len(content)))
            else:
                assert path.endswith((".pyc", "/RECORD")), path


def test_record_lists_every_file_the_distribution_installed(
    environment: Environment,
) -> None:
    """Nothing of a distribution is on disk that its RECORD does not list."""
    dist_info = next(environment.site.glob("bgservice_bench_0007-*.dist-info"))
    rows = csv.reader((dist_info / "RECORD").read_text().splitlines())
    recorded = {row[0] for row in rows}

    package = environment.site / backend_package(7)
    on_disk = {
        path.relative_to(environment.site).as_posix()
        for folder in (package, dist_info)
        for path in folder.rglob("*")
        if path.is_file()
    }
    assert on_disk == recorded


def test_importlib_metadata_reads_the_environment_as_installed(
    environment: Environment,
) -> None:
    """The backends are found in their group, the others carry other groups."""
    distributions = list(importlib_metadata.distributions(path=[str(environment.site)]))
    entry_points = [ep for dist in distributions for ep in dist.entry_points]
    backends = [ep for ep in entry_points if ep.group == BACKEND_GROUP]

    assert len(distributions) == 350
    assert sorted(ep.name for ep in backends) == list(environment.backend_names)
    assert {ep.group for ep in entry_points} - {BACKEND_GROUP}
    selected = next(ep for ep in backends if ep.name == environment.selected)
    assert selected.value == backend_package(150)
    assert selected.dist is not None
    assert selected.dist.metadata["Name"] == "bgservice-bench-0150"
    record = selected.dist.read_text("RECORD") or ""
    assert len(selected.dist.files or []) == len(record.splitlines())


# -- what opening and listing touch ------------------------------------------


def test_open_of_one_backend_among_hundreds_imports_exactly_that_one(
    environment: Environment, tmp_path: Path
) -> None:
    """The benchmark's open child imports the selected backend module and no other."""
    argv = [sys.executable, str(CHILDREN / "open_ours.py"), environment.selected]

    _, modules = run_child(argv, environment.site, tmp_path)

    assert backend_modules(modules) == [backend_package(150)]


def test_pluggy_loading_the_whole_group_imports_every_backend(
    environment: Environment, tmp_path: Path
) -> None:
    """The pluggy alternative really does what its row says: load all of them."""
    argv = [
        sys.executable,
        str(CHILDREN / "open_pluggy.py"),
        environment.selected,
        "--whole-group",
    ]

    _, modules = run_child(argv, environment.site, tmp_path)

    assert len(backend_modules(modules)) == 300


def test_open_reads_the_metadata_of_the_selected_distribution_only(
    environment: Environment, tmp_path: Path
) -> None:
    """Among 350 distributions, opening one backend opens one METADATA file."""
    code = f"""
import logging, sys
opened = []
def watch(event, arguments):
    if event == "open" and str(arguments[0]).endswith("METADATA"):
        opened.append(str(arguments[0]))
class NoGate:
    def set_gate(self, slug, suspended, deny_status, deny_reason):
        pass
sys.addaudithook(watch)
import bgservice_core
config = bgservice_core.Config(
    logger=logging.getLogger("test"), gate=NoGate(), node_id="node.test"
)
bgservice_core.open({environment.selected!r}, config)
print("\\n".join(opened))
"""
    completed, _ = run_child([sys.executable, "-c", code], environment.site, tmp_path)

    opened = [Path(line).parent.name for line in completed.stdout.splitlines()]
    assert len(opened) == 1, opened
    assert opened[0].startswith("bgservice_bench_0150-")


def test_open_never_imports_the_email_parser(
    environment: Environment, tmp_path: Path
) -> None:
    """Reading a backend's name and version costs no import of the email package."""
    argv = [sys.executable, str(CHILDREN / "open_ours.py"), environment.selected]

    _, modules = run_child(argv, environment.site, tmp_path)

    assert "bgservice_core._discovery" in modules
    # importlib-metadata imports the bare package; the parser is the cost.
    assert not [module for module in modules if module.startswith("email.")]


METADATA_SHAPES = {
    "plain": "Metadata-Version: 2.1\nName: Plain\nVersion: 1.0\nSummary: S\n\nBody\n",
    "no summary, one in the body": (
        "Metadata-Version: 2.1\nName: quiet\nVersion: 2\n\nSummary: not a header\n"
    ),
    "windows line endings": "Name: crlf\r\nVersion: 3.0\r\nSummary: x\r\n\r\nBody",
    "lowercase keys, loose spacing": "name:   spaced  \nVERSION:4.1\nsummary:\t t \n",
    "repeated name": "Name: first\nName: second\nVersion: 5\n",
    "folded license before": "Name: f\nLicense: MIT\n        and more\nVersion: 6\n",
    "no version": "Metadata-Version: 2.1\nName: versionless\n",
}


@pytest.mark.parametrize("shape", sorted(METADATA_SHAPES))
def test_identity_fields_read_what_importlib_metadata_parses(
    shape: str, tmp_path: Path
) -> None:
    """Name, Version and Summary match ``Distribution.metadata`` for each shape."""
    dist_info = tmp_path / "thing-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_bytes(METADATA_SHAPES[shape].encode())
    distribution = importlib_metadata.PathDistribution(dist_info)

    fields = _discovery.identity_fields(distribution)

    metadata = distribution.metadata
    expected = {
        key.lower(): metadata[key]
        for key in ("Name", "Version", "Summary")
        if metadata.get(key) is not None
    }
    assert fields == expected


def test_identity_fields_read_an_egg_info_folder(tmp_path: Path) -> None:
    """A legacy egg-info folder's PKG-INFO is read as importlib-metadata reads it."""
    egg_info = tmp_path / "legacy.egg-info"
    egg_info.mkdir()
    (egg_info / "PKG-INFO").write_text("Name: legacy\nVersion: 0.9\n")

    fields = _discovery.identity_fields(importlib_metadata.PathDistribution(egg_info))

    assert fields == {"name": "legacy", "version": "0.9"}


def test_the_list_floor_prints_what_bgservice_list_prints(
    environment: Environment, tmp_path: Path
) -> None:
    """The baseline of ``bgservice list --json`` lists the same backends."""
    ours, _ = run_child([str(BGSERVICE), "list", "--json"], environment.site, tmp_path)
    floor, _ = run_child(
        [sys.executable, str(CHILDREN / "list_floor.py")], environment.site, tmp_path
    )

    def identities(output: str) -> list[tuple[str, str, str]]:
        rows = json.loads(output)
        return [(row["name"], row["distribution"], row["version"]) for row in rows]

    assert identities(ours.stdout) == identities(floor.stdout)
    assert len(identities(floor.stdout)) >= 300


# -- what importing costs -----------------------------------------------------


def test_importing_the_package_imports_none_of_its_parts(tmp_path: Path) -> None:
    """``import bgservice_core`` loads only the package and its version."""
    code = "import sys, bgservice_core; print('\\n'.join(sys.modules))"

    completed, _ = run_child([sys.executable, "-c", code], None, tmp_path)

    modules = set(completed.stdout.split())
    ours = {module for module in modules if module.startswith("bgservice_core")}
    assert ours == {"bgservice_core", "bgservice_core._version"}
    assert not modules & {"pluggy", "importlib_metadata"}


def test_what_a_chassis_imports_pulls_in_no_cli_and_no_storage(
    tmp_path: Path,
) -> None:
    """Config, ServiceRunner and open bring neither click, nor sqlite3, nor tabulate."""
    _, modules = run_child(
        [sys.executable, str(CHILDREN / "import_chassis.py")], None, tmp_path
    )

    assert "bgservice_core._opening" in modules
    assert not set(modules) & {"click", "sqlite3", "tabulate"}


def test_help_imports_neither_pluggy_nor_importlib_metadata(tmp_path: Path) -> None:
    """``bgservice --help`` does not pay for discovery or hook validation."""
    code = (
        "import sys\nfrom bgservice_core._cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)"
    )

    completed, _ = run_child([sys.executable, "-c", code], None, tmp_path)

    assert "Usage:" in completed.stdout
    modules = set(completed.stderr.split())
    assert "click" in modules
    assert not modules & {"pluggy", "importlib_metadata", "sqlite3", "tabulate"}


@pytest.mark.parametrize("name", sorted(bgservice_core._DEFINED_IN))
def test_every_public_name_is_the_object_its_module_defines(name: str) -> None:
    """The package's lazily imported names are the definitions themselves."""
    module = importlib.import_module(
        f"bgservice_core.{bgservice_core._DEFINED_IN[name]}"
    )

    assert getattr(bgservice_core, name) is getattr(module, name)
    assert name in dir(bgservice_core)


def test_the_lazy_names_are_exactly_the_public_ones() -> None:
    """No public name lacks a home module, and no private one is exported."""
    assert set(bgservice_core._DEFINED_IN) == set(bgservice_core.__all__) - {
        "__version__"
    }


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A misspelt name fails as a missing attribute, naming it."""
    with pytest.raises(AttributeError, match="has no attribute 'opne'"):
        bgservice_core.opne  # type: ignore[attr-defined]  # noqa: B018


# -- the credit-gate ledgers --------------------------------------------------


class RecordingGate:
    """A Gate that remembers which tenants it was asked to change."""

    def __init__(self) -> None:
        self.changes: set[tuple[str, int]] = set()

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        self.changes.add((slug, int(suspended)))


def test_a_generated_ledger_is_in_the_steady_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick on a freshly generated ledger calls the Gate for no tenant."""
    ledger = tmp_path / "ledger.db"
    fill_sqlite(ledger, 1000, node_id="node.test")
    gate = RecordingGate()

    tick_once(ledger, gate, monkeypatch)

    assert gate.changes == set()


def test_the_plain_query_selects_the_changes_a_tick_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The baseline query picks out exactly the tenants whose gate a tick changes."""
    ledger = tmp_path / "ledger.db"
    fill_sqlite(ledger, 1000, node_id="node.test")
    with contextlib.closing(sqlite3.connect(ledger)) as connection, connection:
        # Newly out of credit, topped up, and exhausted but not yet recorded.
        connection.execute(
            "UPDATE credit_balances SET balance = 0 WHERE slug = ?", (slug(5),)
        )
        connection.execute(
            "UPDATE credit_balances SET balance = 7 WHERE slug = ?", (slug(100),)
        )
        connection.execute(
            "DELETE FROM credit_gate_engagements WHERE slug = ?", (slug(200),)
        )
    query = (CHILDREN / "changes_due.sql").read_text()
    with contextlib.closing(sqlite3.connect(ledger)) as connection:
        selected = set(connection.execute(query).fetchall())
    gate = RecordingGate()

    tick_once(ledger, gate, monkeypatch)

    assert selected == {(slug(5), 1), (slug(100), 0), (slug(200), 1)}
    assert gate.changes == selected


def tick_once(
    ledger: Path, gate: RecordingGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Open the installed credit-gate backend on ``ledger`` and run one tick."""
    monkeypatch.setenv("BGSERVICE_CREDIT_DSN", str(ledger))
    monkeypatch.setenv("BGSERVICE_CREDIT_STATE_DSN", str(ledger))
    config = bgservice_core.Config(
        logger=logging.getLogger("tests.bench"), gate=gate, node_id="node.test"
    )
    (service,) = bgservice_core.open("credit-gate", config)
    service.tick()  # type: ignore[attr-defined]


# -- the drain ----------------------------------------------------------------


class WaitsForAllOthers:
    """A service whose stop() returns only once every other stop() has begun."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.barrier.wait()


def test_the_drain_runs_every_stop_at_the_same_time() -> None:
    """Fifty stops that each wait for all the others all finish: none waits in line."""
    barrier = threading.Barrier(50, timeout=20)
    runner = bgservice_core.ServiceRunner()
    runner.start({f"service-{n}": WaitsForAllOthers(barrier) for n in range(50)})

    report = runner.drain(timeout=30)

    assert len(report.stopped) == 50
    assert not report.failed
    assert not report.still_draining


# -- the harness --------------------------------------------------------------


def test_rounds_alternate_their_order() -> None:
    """Commands run A B C, then C B A, so drift falls on all of them alike."""
    assert list(interleaved(3, 4)) == [0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0]


def summary_of(label: str, walls: list[float]) -> Summary:
    samples = tuple(Sample(wall, 0, {}, frozenset()) for wall in walls)
    return Summary(label, samples)


def test_the_ratio_compares_runs_of_the_same_round() -> None:
    """A slow spell that slows both runs of a round does not move the ratio."""
    ours = summary_of("ours", [1.0, 1.1, 3.0, 3.3, 1.05])
    baseline = summary_of("baseline", [1.0, 1.0, 3.0, 3.0, 1.0])

    assert paired_ratio(ours, baseline) == pytest.approx(1.05)
    assert ours.median() / baseline.median() == pytest.approx(1.1)


def test_the_net_ratio_takes_the_same_round_s_startup_off() -> None:
    """Net of startup, 0.2 s of interpreter on both sides does not count."""
    ours = summary_of("ours", [1.2, 1.4, 1.2])
    baseline = summary_of("baseline", [1.2, 1.2, 1.2])
    startup = summary_of("startup", [0.2, 0.2, 0.2])

    assert paired_ratio(ours, baseline, startup) == pytest.approx(1.0)


def test_peak_memory_is_the_child_s_own_not_the_harness_s(tmp_path: Path) -> None:
    """A harness holding 400 MiB still measures a small child as small."""
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = Command("small", (sys.executable, "-c", "pass"))
    touch = "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    large = Command("large", (sys.executable, "-c", touch))

    with Spawner(tmp_path) as spawner:
        small_sample = spawner.run(small, dict(os.environ))
        large_sample = spawner.run(large, dict(os.environ))

    assert len(ballast) > 0
    assert small_sample.max_rss_kib < 100 * 1024
    assert large_sample.max_rss_kib > 200 * 1024


def test_a_quick_run_writes_its_table_and_figures(tmp_path: Path) -> None:
    """``run.py --quick`` finishes and writes the Markdown table and the JSON."""
    run = ROOT / "benchmarks" / "run.py"
    completed = subprocess.run(
        [sys.executable, str(run), "--quick", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )

    assert completed.returncode == 0, completed.stderr
    page = (tmp_path / "benchmarks.md").read_text()
    data = json.loads((tmp_path / "benchmarks.json").read_text())
    cases = {row["case"] for row in data["rows"]}
    assert {
        "bgservice list --json",
        "open one backend",
        "open, the alternatives",
        "import bgservice_core",
        "bgservice --help",
    } <= cases
    assert "| case | environment |" in page
    assert all(row["case"] in page for row in data["rows"])
