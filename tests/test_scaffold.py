"""``bgservice new``: names, target folders, and the whole path a user takes.

The end-to-end tests scaffold a backend, pip-install it into a folder on
``PYTHONPATH`` (offline when the build backend is at hand), and then list it,
run its own generated tests and run it under ``bgservice run``, each through the
real command line in a process of its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from bgservice_core._cli import main
from bgservice_core._scaffold import BackendNames


def bgservice_command() -> list[str]:
    """The ``bgservice`` script of this interpreter's environment."""
    script = Path(sys.executable).with_name("bgservice")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "bgservice_core._cli"]


# -- names and folders -----------------------------------------------------------


def test_names_derive_from_the_backend_name() -> None:
    """Distribution, package, class and variable all follow the backend name."""
    assert BackendNames.for_backend("credit-gate") == BackendNames(
        backend="credit-gate",
        distribution="bgservice-credit-gate",
        package="bgservice_credit_gate",
        class_name="CreditGateService",
        period_variable="BGSERVICE_CREDIT_GATE_PERIOD",
    )


@pytest.mark.parametrize(
    "name", ["Cleanup", "clean up", "9lives", "credit--gate", "gate-", "a,b", ""]
)
def test_new_rejects_a_name_that_cannot_be_a_package(name: str, tmp_path: Path) -> None:
    """A malformed name is a usage error that quotes it and shows good ones."""
    result = CliRunner().invoke(main, ["new", name, "--directory", str(tmp_path / "x")])

    assert result.exit_code == 2
    assert (
        f"Invalid value for NAME: invalid backend name {name!r}: use lowercase "
        "letters and digits, starting with a letter, with single '-' or '_' "
        "between words, such as 'cleanup' or 'credit-gate'"
    ) in " ".join(result.output.split())
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["nop", "core"])
def test_new_rejects_a_reserved_name(name: str, tmp_path: Path) -> None:
    """'nop' means no service and 'core' would shadow bgservice-core."""
    result = CliRunner().invoke(main, ["new", name, "--directory", str(tmp_path / "x")])

    assert result.exit_code == 2
    assert f"invalid backend name {name!r}: it is reserved (core, nop are); " in (
        " ".join(result.output.split())
    )


def test_new_rejects_a_name_too_long_for_a_file_name(tmp_path: Path) -> None:
    """A very long name is a usage error quoting its start, not an OSError."""
    name = "a" * 300

    result = CliRunner().invoke(main, ["new", name, "--directory", str(tmp_path / "x")])

    assert result.exit_code == 2
    assert (
        "Error: Invalid value for NAME: invalid backend name "
        "'aaaaaaaaaaaaaaaaaaaa...': it is 300 characters long; use at most 64"
    ) in " ".join(result.output.split())
    assert not (tmp_path / "x").exists()


def test_new_accepts_a_name_of_the_longest_length(tmp_path: Path) -> None:
    """A name of exactly 64 characters is still accepted."""
    result = CliRunner().invoke(
        main, ["new", "a" * 64, "--directory", str(tmp_path / "x")]
    )

    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / f"tests/test_bgservice_{'a' * 64}.py").is_file()


def test_new_creates_only_the_last_folder(tmp_path: Path) -> None:
    """Like mkdir without -p, a missing parent folder is a usage error."""
    target = tmp_path / "missing" / "deep" / "dir"

    result = CliRunner().invoke(main, ["new", "cleanup", "--directory", str(target)])

    assert result.exit_code == 2
    assert (
        f"Error: cannot create {str(target)!r}: its parent folder "
        f"{str(target.parent)!r} does not exist; create it first, or choose "
        "another place with --directory"
    ) in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("folder", "reason"),
    [
        ("b" * 300, "File name too long"),
        ("read-only/x", "Permission denied"),
        pytest.param(
            "/proc/bgservice-new",  # absolute: replaces tmp_path when joined
            "No such file or directory",
            marks=pytest.mark.skipif(
                not Path("/proc/self").exists(), reason="needs Linux's /proc"
            ),
        ),
    ],
)
def test_new_reports_what_the_file_system_refuses(
    tmp_path: Path, folder: str, reason: str
) -> None:
    """A folder the system cannot create is an error quoting it, no traceback."""
    (tmp_path / "read-only").mkdir(mode=0o500)
    if os.geteuid() == 0 and reason == "Permission denied":
        pytest.skip("root may write into a read-only folder")
    target = tmp_path / folder

    result = CliRunner().invoke(main, ["new", "cleanup", "--directory", str(target)])

    assert result.exit_code == 1
    assert result.exception is not None
    assert isinstance(result.exception, SystemExit)
    assert result.output == (
        f"Error: cannot create the backend in {str(target)!r}: {reason}\n"
    )


def test_new_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    """Nothing is overwritten: a non-empty target folder is a usage error."""
    (tmp_path / "keep.txt").write_text("mine")

    result = CliRunner().invoke(main, ["new", "cleanup", "--directory", str(tmp_path)])

    assert result.exit_code == 2
    assert (
        f"Error: directory {str(tmp_path)!r} already exists and is not empty; "
        "choose another with --directory, or remove it first"
    ) in " ".join(result.output.split())
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]


def test_new_refuses_a_file_as_its_folder(tmp_path: Path) -> None:
    """A target that is a file is a usage error."""
    target = tmp_path / "taken"
    target.write_text("")

    result = CliRunner().invoke(main, ["new", "cleanup", "--directory", str(target)])

    assert result.exit_code == 2
    assert (
        f"Error: Invalid value for '--directory': Directory {str(target)!r} is a file."
    ) in " ".join(result.output.split())


def test_new_fills_an_empty_folder_and_says_what_next(tmp_path: Path) -> None:
    """An existing empty folder is used; the output lists the next commands."""
    # A name no one installs: an installed namesake would add a warning line.
    name = "scaffold-probe-7f3a"
    result = CliRunner().invoke(main, ["new", name, "--directory", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert result.output == (
        f"created backend {name!r} in {tmp_path}\n"
        f"next:\n  cd {tmp_path}\n  pip install -e '.[test]'\n  bgservice list\n"
        f"  python -m pytest\n  bgservice run {name}\n"
    )
    created = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.*"))
    package = "bgservice_scaffold_probe_7f3a"
    assert created == [
        "README.md",
        f"{package}/__init__.py",
        f"{package}/py.typed",
        "pyproject.toml",
        f"tests/test_{package}.py",
    ]


def test_a_service_class_named_test_is_not_collected(tmp_path: Path) -> None:
    """A class whose name starts with Test tells pytest it holds no tests."""
    CliRunner().invoke(main, ["new", "test", "--directory", str(tmp_path / "t")])
    CliRunner().invoke(main, ["new", "cleanup", "--directory", str(tmp_path / "c")])

    tested = (tmp_path / "t" / "bgservice_test" / "__init__.py").read_text()
    cleanup = (tmp_path / "c" / "bgservice_cleanup" / "__init__.py").read_text()
    assert "class TestService(LoopService):" in tested
    assert "    __test__ = False\n" in tested
    assert "__test__" not in cleanup


def test_new_defaults_to_a_folder_named_after_the_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --directory the folder is ./bgservice-NAME."""
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["new", "credit-gate"])

    assert result.exit_code == 0, result.output
    pyproject = (tmp_path / "bgservice-credit-gate" / "pyproject.toml").read_text()
    assert 'name = "bgservice-credit-gate"' in pyproject
    assert '[project.entry-points."bgservice.backends"]\ncredit-gate = ' in pyproject


def test_new_warns_when_the_name_is_already_installed(tmp_path: Path) -> None:
    """Scaffolding an installed name works, with a warning about the conflict."""
    result = CliRunner().invoke(
        main, ["new", "heartbeat", "--directory", str(tmp_path / "hb")]
    )

    assert result.exit_code == 0, result.output
    assert (
        "warning: backend 'heartbeat' is already installed (distribution "
        "bgservice-heartbeat"
    ) in result.output


# -- scaffold, install, list, test, run --------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scaffold ``cleanup`` with the real CLI and pip-install it; yield the project.

    The installation goes to a folder of its own, ``site``, beside the project.
    """
    return scaffold_and_install(tmp_path_factory.mktemp("scaffold"), "cleanup")


def scaffold_and_install(root: Path, name: str) -> Path:
    """Scaffold backend ``name`` into ``root`` and pip-install it into root/site."""
    project = root / f"bgservice-{name}"
    subprocess.run(
        [*bgservice_command(), "new", name, "--directory", str(project)],
        check=True,
        capture_output=True,
    )

    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    if importlib.util.find_spec("hatchling") is not None:
        # The build backend is here already: build without the network.
        command += ["--no-build-isolation", "--no-index"]
    completed = subprocess.run(
        [*command, "--target", str(root / "site"), str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return project


def environment(project: Path) -> Mapping[str, str]:
    """The environment in which the installed backend is visible."""
    inherited = os.environ.get("PYTHONPATH")
    site = str(project.parent / "site")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [site, inherited])),
    }


def test_the_installed_backend_is_listed(installed: Path) -> None:
    """bgservice list shows the new backend from its own distribution."""
    completed = subprocess.run(
        [*bgservice_command(), "list", "--json"],
        capture_output=True,
        text=True,
        env=environment(installed),
        check=True,
    )

    rows = {row["name"]: row for row in json.loads(completed.stdout)}
    assert rows["cleanup"]["distribution"] == "bgservice-cleanup"
    assert rows["cleanup"]["entry_point"] == "bgservice_cleanup"
    assert rows["cleanup"]["summary"] == "A bgservice backend: cleanup"


def test_the_installed_backend_imports_and_validates(installed: Path) -> None:
    """bgservice list --check imports it and finds its hook valid."""
    completed = subprocess.run(
        [*bgservice_command(), "list", "--check", "--json"],
        capture_output=True,
        text=True,
        env=environment(installed),
        check=False,
    )

    statuses = {row["name"]: row["status"] for row in json.loads(completed.stdout)}
    assert statuses["cleanup"] == "ok"


def test_the_generated_tests_pass(installed: Path) -> None:
    """The project's own tests, conformance included, pass out of the box."""
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=installed,
        capture_output=True,
        text=True,
        env=environment(installed),
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 passed" in completed.stdout


def test_a_backend_named_test_passes_its_own_tests(tmp_path: Path) -> None:
    """Its class TestService is not taken for tests, even with warnings as errors."""
    project = scaffold_and_install(tmp_path, "test")

    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        env=environment(project),
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 passed" in completed.stdout


def test_the_installed_backend_runs_and_drains_on_sigterm(installed: Path) -> None:
    """bgservice run cleanup starts it, and SIGTERM drains it with exit 0."""
    with subprocess.Popen(
        [*bgservice_command(), "run", "cleanup", "--db", str(installed / "run.db")],
        cwd=installed,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**environment(installed), "BGSERVICE_CLEANUP_PERIOD": "3600"},
    ) as process:
        stderr = StderrReader(process)
        try:
            stderr.wait_for("round 1 on node")
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
        finally:
            process.kill()
        output = stderr.finish()

    assert code == 0, output
    assert "service 'cleanup' stopped" in output


def test_the_generated_code_is_lint_clean(installed: Path) -> None:
    """The generated sources pass ruff with the rules the project sets."""
    pytest.importorskip("ruff", reason="ruff is a development tool, not a test one")
    for command in (["check"], ["format", "--check"]):
        completed = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
            cwd=installed,
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


def test_the_generated_code_is_strictly_typed(installed: Path, tmp_path: Path) -> None:
    """The generated package and tests pass mypy --strict."""
    pytest.importorskip("mypy", reason="mypy is a development tool, not a test one")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "mypy"),
            "bgservice_cleanup",
            "tests",
        ],
        cwd=installed,
        capture_output=True,
        text=True,
        env=environment(installed),
        check=False,
    )

    assert completed.returncode == 0, completed.stdout


class StderrReader:
    """Collects a process's stderr in a thread, so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,))
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Wait until a line contains ``text``; the bound only proves no hang."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in line for line in self._lines), timeout
            )
        if not found:
            raise AssertionError(f"no line with {text!r} in {timeout:g}s:\n{self}")

    def __str__(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def finish(self) -> str:
        """Wait for the end of the stream and return all of it."""
        self._thread.join(timeout=30)
        return str(self)
