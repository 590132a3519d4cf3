"""``bgservice list``: what is installed, and whether it loads."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bgservice_core import ExitCode, _cli, _cli_list
from tests.distributions import WELL_BEHAVED_MODULE, install_distribution

GROUP = "'bgservice.backends'"
NOTHING_INSTALLED = f"no backends installed in entry-point group {GROUP}\n"
COLUMNS = [
    "name",
    "distribution",
    "version",
    "entry_point",
    "summary",
    "conflict",
    "valid_name",
]


@pytest.fixture
def only_site_dir(site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``site_dir`` with the environment's own installed distributions hidden.

    The check subprocesses still see everything, but only check listed rows.
    """
    # The table is drawn by a lazily imported module that must stay reachable.
    importlib.import_module("tabulate")
    hidden = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in hidden])
    return site_dir


def bgservice(*arguments: str) -> Result:
    """Run the bgservice command in this process."""
    runner = CliRunner()
    return runner.invoke(_cli.main, list(arguments), catch_exceptions=False)


def install_backend(
    site: Path, name: str, source: str = WELL_BEHAVED_MODULE, **metadata: Any
) -> None:
    """Install ``<name>-dist`` offering ``<name>_mod`` as ``name``."""
    install_distribution(
        site,
        f"{name}-dist",
        entry_points={name: f"{name}_mod"},
        modules={f"{name}_mod.py": source},
        **metadata,
    )


def install_example_backends(site: Path) -> None:
    """Install two backends, the later-sorting one first.

    Version 1.10 would print as 1.1 if the table took it for a number.
    """
    install_backend(site, "zeta", version="1.10", summary="Runs last")
    install_backend(site, "alpha", version="0.1", summary="Runs first")


def row(
    name: str,
    version: str,
    summary: str,
    conflict: bool = False,
    valid_name: bool = True,
) -> Any:
    """Return the JSON row of a backend installed by install_backend."""
    return {
        "name": name,
        "distribution": f"{name}-dist",
        "version": version,
        "entry_point": f"{name}_mod",
        "summary": summary,
        "conflict": conflict,
        "valid_name": valid_name,
    }


def install_unselectable_backends(site: Path) -> None:
    """Install entry points named so that no backend list can select them."""
    install_distribution(
        site,
        "odd-dist",
        entry_points={"x,y": "comma_mod", "nop": "nop_mod", "Bad Name": "space_mod"},
        modules={
            f"{module}.py": "raise RuntimeError('never import me')\n"
            for module in ("comma_mod", "nop_mod", "space_mod")
        },
    )


def invalid_name_note(name: str) -> str:
    """The stderr note ``list`` prints for an entry point of odd-dist."""
    return (
        f"INVALID NAME: invalid backend name {name!r}: a name is a non-empty "
        "string without whitespace or commas, and 'nop' is reserved for 'no "
        "service'; no backend list can select it, so distribution odd-dist must "
        "rename its entry point in group 'bgservice.backends'."
    )


# -- listing ------------------------------------------------------------------


def test_list_prints_a_sorted_table(only_site_dir: Path) -> None:
    """The table has one row per backend, sorted by name, with its metadata."""
    install_example_backends(only_site_dir)

    result = bgservice("list")

    assert result.exit_code == 0
    assert result.stdout == (
        "name    distribution    version    entry point    summary\n"
        "------  --------------  ---------  -------------  ----------\n"
        "alpha   alpha-dist      0.1        alpha_mod      Runs first\n"
        "zeta    zeta-dist       1.10       zeta_mod       Runs last\n"
    )
    assert result.stderr == ""


def test_list_json_is_a_stable_array(only_site_dir: Path) -> None:
    """--json prints exactly these keys per backend, sorted by name."""
    install_example_backends(only_site_dir)

    result = bgservice("list", "--json")

    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert rows == [
        row("alpha", "0.1", "Runs first"),
        row("zeta", "1.10", "Runs last"),
    ]
    assert all(list(each) == COLUMNS for each in rows)
    assert result.stdout == json.dumps(rows, indent=2) + "\n"


def test_list_sees_the_whole_environment(site_dir: Path) -> None:
    """Without isolation the listing includes our rows next to others."""
    install_example_backends(site_dir)

    rows = json.loads(bgservice("list", "--json").stdout)

    assert row("alpha", "0.1", "Runs first") in rows
    names = [each["name"] for each in rows]
    assert names == sorted(names)


def test_list_flags_conflicts(only_site_dir: Path) -> None:
    """A name two distributions offer is shown twice, marked as a conflict."""
    install_example_backends(only_site_dir)
    install_distribution(
        only_site_dir,
        "rival-dist",
        version="9.9",
        entry_points={"zeta": "rival_mod"},
    )

    as_json = bgservice("list", "--json")
    as_table = bgservice("list")

    assert json.loads(as_json.stdout) == [
        row("alpha", "0.1", "Runs first"),
        {**row("rival", "9.9", "", conflict=True), "name": "zeta"},
        row("zeta", "1.10", "Runs last", conflict=True),
    ]
    assert as_table.exit_code == 0
    assert as_table.stdout.splitlines()[2:] == [
        "alpha            alpha-dist      0.1        alpha_mod      Runs first",
        "zeta (CONFLICT)  rival-dist      9.9        rival_mod",
        "zeta (CONFLICT)  zeta-dist       1.10       zeta_mod       Runs last",
    ]
    assert as_table.stderr == (
        "\nCONFLICT: more than one distribution offers this name; selecting "
        "it is an error until all but one are uninstalled.\n"
    )


def test_list_flags_names_no_list_can_select(only_site_dir: Path) -> None:
    """Names with commas or whitespace, and "nop", are marked and explained."""
    install_example_backends(only_site_dir)
    install_unselectable_backends(only_site_dir)

    result = bgservice("list")

    assert result.exit_code == 0
    assert result.stdout.splitlines()[2:] == [
        "'Bad Name' (INVALID NAME)  odd-dist        1.0        space_mod",
        "alpha                      alpha-dist      0.1        alpha_mod      "
        "Runs first",
        "'nop' (INVALID NAME)       odd-dist        1.0        nop_mod",
        "'x,y' (INVALID NAME)       odd-dist        1.0        comma_mod",
        "zeta                       zeta-dist       1.10       zeta_mod       "
        "Runs last",
    ]
    assert result.stderr == "\n" + "".join(
        invalid_name_note(name) + "\n" for name in ["Bad Name", "nop", "x,y"]
    )


def test_list_json_says_whether_a_name_is_valid(only_site_dir: Path) -> None:
    """--json marks an unselectable name with "valid_name": false."""
    install_example_backends(only_site_dir)
    install_unselectable_backends(only_site_dir)

    rows = json.loads(bgservice("list", "--json").stdout)

    assert {each["name"]: each["valid_name"] for each in rows} == {
        "Bad Name": False,
        "alpha": True,
        "nop": False,
        "x,y": False,
        "zeta": True,
    }
    assert all(list(each) == COLUMNS for each in rows)


def test_list_marks_a_name_both_invalid_and_in_conflict(only_site_dir: Path) -> None:
    """Both flags show when two distributions offer one unselectable name."""
    install_unselectable_backends(only_site_dir)
    install_distribution(only_site_dir, "rival-dist", entry_points={"nop": "rival"})

    result = bgservice("list")

    assert [line.split("  ")[0] for line in result.stdout.splitlines()[2:]] == [
        "'Bad Name' (INVALID NAME)",
        "'nop' (CONFLICT) (INVALID NAME)",
        "'nop' (CONFLICT) (INVALID NAME)",
        "'x,y' (INVALID NAME)",
    ]


def test_check_reports_invalid_names_as_errors(only_site_dir: Path) -> None:
    """list --check fails an unselectable name without importing it, exit 4."""
    install_example_backends(only_site_dir)
    install_unselectable_backends(only_site_dir)

    exit_code, statuses = check_statuses()

    assert exit_code == ExitCode.LOAD_ERROR
    assert statuses == {
        name: (
            f"cannot load backend {name!r} (entry point {module!r} in group "
            "'bgservice.backends', distribution odd-dist 1.0): invalid backend "
            f"name {name!r}: a name is a non-empty string without whitespace or "
            "commas, and 'nop' is reserved for 'no service'; its distribution "
            "must rename the entry point"
        )
        for name, module in [
            ("Bad Name", "space_mod"),
            ("nop", "nop_mod"),
            ("x,y", "comma_mod"),
        ]
    } | {"alpha": "ok", "zeta": "ok"}


@pytest.mark.parametrize("arguments", [["list"], ["list", "--check"]])
def test_list_with_nothing_installed(
    only_site_dir: Path,
    arguments: list[str],
) -> None:
    """With no backend installed, list says so and succeeds."""
    result = bgservice(*arguments)

    assert result.exit_code == 0
    assert result.stdout == NOTHING_INSTALLED


def test_list_json_with_nothing_installed(only_site_dir: Path) -> None:
    """With no backend installed, --json prints an empty array."""
    result = bgservice("list", "--json")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


# -- listing never imports ----------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ["list"],
        ["list", "--json"],
        ["--help"],
        ["list", "--help"],
        ["--version"],
    ],
)
def test_list_never_imports_a_backend(
    site_dir: Path,
    arguments: list[str],
) -> None:
    """Backends that mark, raise or exit on import do not disturb it."""
    marker = site_dir / "imported.marker"
    marking = f"open({str(marker)!r}, 'w').close()\n"
    install_backend(site_dir, "marking", marking)
    install_backend(site_dir, "raising", "raise RuntimeError('imported!')\n")
    install_backend(site_dir, "exiting", "import os\nos._exit(3)\n")
    command = Path(sys.executable).with_name("bgservice")

    completed = subprocess.run(
        [str(command), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert not marker.exists()
    if arguments[-1] == "list":
        for name in ("marking", "raising", "exiting"):
            assert f"{name}-dist" in completed.stdout


# -- --check ------------------------------------------------------------------


def check_statuses() -> tuple[int, dict[str, str]]:
    """Run ``list --check --json``; return the exit code and statuses."""
    result = bgservice("list", "--check", "--json")
    return result.exit_code, {
        each["name"]: each["status"] for each in json.loads(result.stdout)
    }


def test_check_reports_ok_for_good_backends(only_site_dir: Path) -> None:
    """Every backend that imports and validates is reported ok, exit 0."""
    install_example_backends(only_site_dir)

    exit_code, statuses = check_statuses()

    assert exit_code == 0
    assert statuses == {"alpha": "ok", "zeta": "ok"}


def test_check_table(only_site_dir: Path) -> None:
    """Without --json the verdicts are a table with a status column."""
    install_example_backends(only_site_dir)

    result = bgservice("list", "--check")

    assert result.exit_code == 0
    assert result.stdout == (
        "name    distribution    version    status\n"
        "------  --------------  ---------  --------\n"
        "alpha   alpha-dist      0.1        ok\n"
        "zeta    zeta-dist       1.10       ok\n"
    )


def test_check_reports_a_load_error(only_site_dir: Path) -> None:
    """A broken backend's load error is its status, and the exit code is 4."""
    install_example_backends(only_site_dir)
    broken = "x = 1\nraise RuntimeError('no db')\n"
    install_backend(only_site_dir, "broken", broken)

    exit_code, statuses = check_statuses()

    assert exit_code == ExitCode.LOAD_ERROR.value == 4
    assert statuses == {
        "alpha": "ok",
        "broken": (
            "cannot load backend 'broken' (entry point 'broken_mod' in "
            "group 'bgservice.backends', distribution broken-dist 1.0): "
            "import failed: RuntimeError: no db "
            f"(at {only_site_dir / 'broken_mod.py'}:2)"
        ),
        "zeta": "ok",
    }


@pytest.mark.parametrize("code", [3, 0])
def test_check_survives_a_backend_ending_the_interpreter(
    only_site_dir: Path, code: int
) -> None:
    """os._exit() in one import fails that check alone, even os._exit(0)."""
    install_example_backends(only_site_dir)
    install_backend(only_site_dir, "exiting", f"import os\nos._exit({code})\n")

    exit_code, statuses = check_statuses()

    assert exit_code == ExitCode.LOAD_ERROR
    assert statuses == {
        "alpha": "ok",
        "exiting": (
            f"the check process exited with code {code} without a verdict; "
            "the backend may end the interpreter while being imported"
        ),
        "zeta": "ok",
    }


def test_check_ignores_what_a_backend_prints(only_site_dir: Path) -> None:
    """A backend printing on import does not change its verdict."""
    noisy = "import sys\nprint('hi')\nprint('hi', file=sys.stderr)\n"
    install_backend(only_site_dir, "noisy", noisy + WELL_BEHAVED_MODULE)

    exit_code, statuses = check_statuses()

    assert exit_code == 0
    assert statuses == {"noisy": "ok"}


def test_check_gives_up_on_a_hanging_import(
    only_site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import that never finishes is reported once the check times out."""
    monkeypatch.setattr(_cli_list, "CHECK_TIMEOUT", 2.0)
    hanging = "import time\ntime.sleep(3600)\n"
    install_backend(only_site_dir, "hanging", hanging)

    exit_code, statuses = check_statuses()

    assert exit_code == ExitCode.LOAD_ERROR
    assert statuses == {"hanging": "import did not finish within 2 s"}


def test_check_ignores_a_source_tree_in_the_cwd(
    only_site_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check imports what is installed, not a namesake in the cwd."""
    install_example_backends(only_site_dir)
    namesake = tmp_path / "alpha_mod.py"
    namesake.write_text("raise RuntimeError('source tree')\n")
    monkeypatch.chdir(tmp_path)

    exit_code, statuses = check_statuses()

    assert exit_code == 0
    assert statuses == {"alpha": "ok", "zeta": "ok"}
