"""docs/faults.md is evidence: each row's exit code is what a scenario produces.

The table is parsed at collection time; every row runs the scenario registered
under its id against the real ``bgservice run`` and compares the exit code with
the row's. A row without a scenario, or a scenario without a row, fails.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bgservice_core import ExitCode
from tests.distributions import install_distribution
from tests.test_cli_run import READY, Launcher, entered

FAULTS_DOC = Path(__file__).parent.parent / "docs" / "faults.md"

_ROW = re.compile(r"^\|\s*(?P<id>F\d+)\s*\|(?P<cells>.*)\|\s*$")
_EXIT_CELL = re.compile(r"^(?P<code>\d+) `(?P<name>[A-Z_]+)`")


@dataclasses.dataclass(frozen=True)
class FaultRow:
    """One row of the fault table."""

    id: str
    fault: str
    behaviour: str
    exit_cell: str


def read_rows(path: Path = FAULTS_DOC) -> list[FaultRow]:
    """Parse the fault table's rows, in order."""
    rows = []
    for line in path.read_text().splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        fault, behaviour, exit_cell = (c.strip() for c in match["cells"].split("|"))
        rows.append(FaultRow(match["id"], fault, behaviour, exit_cell))
    return rows


ROWS = read_rows()

Scenario = Callable[[Launcher], int]
SCENARIOS: dict[str, Scenario] = {}


def scenario(row_id: str) -> Callable[[Scenario], Scenario]:
    """Register the decorated function as the check of row ``row_id``."""

    def register(function: Scenario) -> Scenario:
        assert row_id not in SCENARIOS, f"two scenarios for {row_id}"
        SCENARIOS[row_id] = function
        return function

    return register


@pytest.fixture
def launcher(site_dir: Path, tmp_path: Path) -> Iterator[Launcher]:
    """A Launcher over a fresh site directory and working directory."""
    launched = Launcher(site_dir, tmp_path)
    yield launched
    launched.close()


# -- the table itself ---------------------------------------------------------


def test_the_table_has_rows_with_unique_ids_and_known_exit_codes() -> None:
    """Ids are unique and each exit cell names the ExitCode of its number."""
    assert len(ROWS) >= 20
    assert len({row.id for row in ROWS}) == len(ROWS)
    for row in ROWS:
        match = _EXIT_CELL.match(row.exit_cell)
        assert match is not None, f"{row.id}: exit cell {row.exit_cell!r}"
        assert ExitCode(int(match["code"])).name == match["name"], row.id


def test_every_scenario_documents_a_row() -> None:
    """No scenario checks a fault the table does not show."""
    assert sorted(set(SCENARIOS) - {row.id for row in ROWS}) == []


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_fault_row_holds(row: FaultRow, launcher: Launcher) -> None:
    """The row's scenario passes and exits with the row's exit code."""
    check = SCENARIOS.get(row.id)
    if check is None:
        pytest.fail(f"row {row.id} ({row.fault}) has no scenario")
    match = _EXIT_CELL.match(row.exit_cell)
    assert match is not None

    assert check(launcher) == int(match["code"])


# -- scenarios ----------------------------------------------------------------


def _summary(lines: list[str]) -> str:
    return next(line for line in reversed(lines) if line.startswith("drain finished"))


@scenario("F1")
def unknown_backend(launcher: Launcher) -> int:
    """A misspelt name is reported with a suggestion; nothing starts."""
    chassis = launcher.run("alpha,alpah")
    code = chassis.finish()

    assert "'alpah' (did you mean 'alpha'?)" in chassis.output
    assert launcher.recorded() == []
    return code


@scenario("F2")
def import_fails(launcher: Launcher) -> int:
    """A backend whose import raises is named with the import error."""
    install_distribution(
        launcher.site,
        "broken-backend",
        entry_points={"broken": "broken_backend"},
        modules={"broken_backend.py": "raise ImportError('needs libfoo')\n"},
    )
    chassis = launcher.run("alpha,broken")
    code = chassis.finish()

    assert "cannot load backend 'broken'" in chassis.output
    assert "ImportError: needs libfoo" in chassis.output
    assert launcher.recorded() == []
    return code


@scenario("F3")
def constructor_raises(launcher: Launcher) -> int:
    """A constructor that raises is named with its exception; nothing starts."""
    chassis = launcher.run("alpha,beta", scripts={"beta": "build=raise"})
    code = chassis.finish()

    assert "backend 'beta' could not build its service" in chassis.output
    assert "beta failed on purpose" in chassis.output
    assert launcher.recorded() == []
    return code


@scenario("F4")
def start_raises(launcher: Launcher) -> int:
    """The earlier services stop newest first; the failing one never stops."""
    chassis = launcher.run("alpha,beta,gamma,delta", scripts={"gamma": "start=raise"})
    code = chassis.finish()

    assert chassis.messages()[-1] == (
        "service 'gamma' failed to start: start() raised RuntimeError after Ns: "
        "gamma failed on purpose; stopped again the services already started: "
        "beta, alpha"
    )
    events = launcher.recorded()
    assert events[-4:] == ["stop beta", "stopped beta", "stop alpha", "stopped alpha"]
    assert "start delta" not in events
    assert "stop gamma" not in events
    return code


@scenario("F5")
def start_hangs(launcher: Launcher) -> int:
    """A start() past the start timeout is named; the one before it stops."""
    chassis = launcher.run(
        "alpha,beta,gamma", "--start-timeout", "0.5", scripts={"beta": "start=hang"}
    )
    code = chassis.finish()

    assert chassis.messages()[-1] == (
        "service 'beta' failed to start: start() did not return within 0.5s; "
        "stopped again the services already started: alpha"
    )
    assert launcher.recorded() == [
        "start alpha",
        "started alpha",
        "start beta",
        "stop alpha",
        "stopped alpha",
    ]
    return code


@scenario("F6")
def start_is_slow(launcher: Launcher) -> int:
    """A start() of over a second runs, logged as a warning with its duration."""
    chassis = launcher.run("alpha,beta", scripts={"alpha": "start=sleep:1.1"})
    chassis.wait_for(READY)

    line = chassis.wait_for(r"WARNING bgservice\.chassis: service 'alpha' started in")
    assert line.endswith(
        "; start() should return at once and leave the work to a background thread"
    )
    assert float(re.findall(r"started in (\d+\.\d+)s", line)[0]) >= 1.0
    chassis.send(signal.SIGTERM)
    return chassis.finish()


@scenario("F7")
def stop_raises(launcher: Launcher) -> int:
    """Two stops raise; the third service still stops; both errors are listed."""
    scripts = {"alpha": "stop=raise", "gamma": "stop=raise"}
    chassis = launcher.run("alpha,beta,gamma", scripts=scripts)
    chassis.wait_for(READY)

    chassis.send(signal.SIGTERM)
    code = chassis.finish()

    lines = chassis.messages()
    assert "service 'alpha' failed to stop after Ns" in lines
    assert "service 'gamma' failed to stop after Ns" in lines
    assert _summary(lines) == (
        "drain finished; stopped 1: beta; failed 2: gamma, alpha; "
        "still draining 0: none"
    )
    for name in ("alpha", "gamma"):
        assert chassis.output.count(f"RuntimeError: {name} failed on purpose") == 1
    return code


@scenario("F8")
def stop_hangs(launcher: Launcher) -> int:
    """A hung stop() holding a non-daemon thread is named; the process exits."""
    scripts = {"alpha": "stop=hang worker=non-daemon"}
    chassis = launcher.run("alpha,beta", "--drain-timeout", "0.5", scripts=scripts)
    chassis.wait_for(READY)

    chassis.send(signal.SIGTERM)
    code = chassis.finish()

    lines = chassis.messages()
    assert _summary(lines) == (
        "drain finished; stopped 1: beta; failed 0: none; still draining 1: alpha"
    )
    assert lines[-1] == (
        "exiting without waiting for threads the services left running: scripted-alpha"
    )
    return code


@scenario("F9")
def crash_with_shutdown_policy(launcher: Launcher) -> int:
    """A crash drains everything; it is logged once, with its traceback."""
    chassis = launcher.run("beta,alpha", scripts={"alpha": "crash=report"})
    code = chassis.finish()

    assert chassis.output.count("RuntimeError: alpha lost its connection") == 1
    assert "service 'alpha' crashed while running (crash policy: shutdown)" in (
        chassis.messages()
    )
    assert _summary(chassis.messages()).endswith("; crashed while running: alpha")
    assert {"stopped alpha", "stopped beta"} <= set(launcher.recorded())
    return code


@scenario("F10")
def crash_with_report_policy(launcher: Launcher) -> int:
    """Under the report policy a crash is logged and everything keeps running."""
    chassis = launcher.run(
        "alpha,beta", "--on-crash", "report", scripts={"alpha": "crash=report"}
    )
    chassis.wait_for(r"service 'alpha' crashed while running \(crash policy: report\)")
    chassis.wait_for(READY)
    assert chassis.process.poll() is None

    chassis.send(signal.SIGTERM)
    code = chassis.finish()

    assert chassis.output.count("RuntimeError: alpha lost its connection") == 1
    assert _summary(chassis.messages()).endswith("; crashed while running: alpha")
    return code


@scenario("F11")
def loop_tick_raises(launcher: Launcher) -> int:
    """A LoopService tick that raises is reported as a crash, once."""
    scripts = {"alpha": "kind=loop period=0.05 crash-on-tick=2"}
    chassis = launcher.run("alpha,beta", scripts=scripts)
    code = chassis.finish()

    assert chassis.output.count("RuntimeError: tick 2 failed on purpose") == 1
    assert _summary(chassis.messages()).endswith("; crashed while running: alpha")
    return code


@scenario("F12")
def loop_fails_while_stopping(launcher: Launcher) -> int:
    """A teardown raising during the drain makes stop() raise, logged once."""
    chassis = launcher.run("alpha", scripts={"alpha": "kind=loop teardown=raise"})
    chassis.wait_for(READY)

    chassis.send(signal.SIGTERM)
    code = chassis.finish()

    assert "service 'alpha' failed to stop after Ns" in chassis.messages()
    assert chassis.output.count("RuntimeError: alpha failed on purpose") == 1
    assert "ServiceCrashedError: service 'alpha' crashed while running" in (
        chassis.output
    )
    assert "crashed while running (crash policy" not in chassis.output
    return code


def _drain_on(launcher: Launcher, signum: signal.Signals) -> int:
    chassis = launcher.run("alpha,beta")
    chassis.wait_for(READY)

    chassis.send(signum)
    code = chassis.finish()

    assert f"{signum.name} received; shutting down" in chassis.output
    assert {"stopped alpha", "stopped beta"} <= set(launcher.recorded())
    return code


@scenario("F13")
def sigterm_while_running(launcher: Launcher) -> int:
    """SIGTERM drains every service."""
    return _drain_on(launcher, signal.SIGTERM)


@scenario("F14")
def sigint_while_running(launcher: Launcher) -> int:
    """SIGINT drains every service."""
    return _drain_on(launcher, signal.SIGINT)


@scenario("F15")
def signal_during_start(launcher: Launcher) -> int:
    """Nothing more starts; the starting service stops only after its start()."""
    release = launcher.release_file("beta")
    scripts = {"beta": f"start=file:{release}"}
    chassis = launcher.run("alpha,beta,gamma", scripts=scripts)
    chassis.wait_for(entered("beta", "start"))

    chassis.send(signal.SIGTERM)
    chassis.wait_for("shutdown requested while service 'beta' was starting")
    release.touch()
    code = chassis.finish()

    events = launcher.recorded()
    assert "start gamma" not in events
    assert events.index("started beta") < events.index("stop beta")
    assert {"stopped alpha", "stopped beta"} <= set(events)
    return code


@scenario("F16")
def second_signal_during_drain(launcher: Launcher) -> int:
    """The second signal exits at once and names what was still draining."""
    never = launcher.release_file("alpha")
    chassis = launcher.run("alpha,beta", scripts={"alpha": f"stop=file:{never}"})
    chassis.wait_for(READY)

    chassis.send(signal.SIGTERM)
    chassis.wait_for(entered("alpha", "stop"))
    chassis.wait_for("service 'beta' stopped in")
    chassis.send(signal.SIGINT)
    code = chassis.finish()

    assert chassis.messages()[-1] == (
        "second SIGINT received; exiting now without waiting; still draining: alpha"
    )
    assert "stopped alpha" not in launcher.recorded()
    return code


@scenario("F17")
def first_signal_during_crash_drain(launcher: Launcher) -> int:
    """Ctrl-C during a crash's drain is the first signal: every stop finishes."""
    alpha, beta = launcher.release_file("alpha"), launcher.release_file("beta")
    scripts = {"alpha": f"crash=report stop=file:{alpha}", "beta": f"stop=file:{beta}"}
    chassis = launcher.run("beta,alpha", scripts=scripts)
    chassis.wait_for(entered("alpha", "stop"))
    chassis.wait_for(entered("beta", "stop"))

    chassis.send(signal.SIGINT)
    chassis.wait_for(r"SIGINT received \(already shutting down\)")
    alpha.touch()
    beta.touch()
    code = chassis.finish()

    assert {"stopped alpha", "stopped beta"} <= set(launcher.recorded())
    assert "FORCED" not in chassis.output
    return code


@scenario("F18")
def sighup(launcher: Launcher) -> int:
    """SIGHUP logs a warning and changes nothing; SIGTERM then drains."""
    chassis = launcher.run("alpha")
    chassis.wait_for(READY)

    chassis.send(signal.SIGHUP)
    line = chassis.wait_for("SIGHUP received and ignored")
    assert chassis.process.poll() is None
    chassis.send(signal.SIGTERM)
    code = chassis.finish()

    assert "WARNING" in line
    assert "stopped alpha" in launcher.recorded()
    return code


@scenario("F19")
def empty_list(launcher: Launcher) -> int:
    """An empty list runs nothing and says how to name services."""
    chassis = launcher.run("")
    code = chassis.finish()

    assert "no background services named" in chassis.output
    return code


@scenario("F20")
def invalid_option(launcher: Launcher) -> int:
    """A non-positive drain timeout is a usage error before anything runs."""
    chassis = launcher.run("alpha", "--drain-timeout", "0")
    code = chassis.finish()

    assert "Invalid value for '--drain-timeout'" in chassis.output
    assert launcher.recorded() == []
    for option, value in [
        ("--drain-timeout", "nan"),
        ("--drain-timeout", "inf"),
        ("--start-timeout", "1e300"),
        ("--start-timeout", "-1"),
    ]:
        rejected = launcher.run("alpha", option, value)
        assert rejected.finish() == code
        assert rejected.output.splitlines()[-1] == (
            f"Error: Invalid value for {option!r}: {value!r} is not a usable "
            "number of seconds: it must be finite, greater than 0 and at most "
            "604800 (one week)"
        )
    assert launcher.recorded() == []
    return code


#: A backend whose import announces itself and then never finishes.
HANGING_IMPORT_MODULE = """
import logging
import time

logging.getLogger("hanging").warning("import entered")
time.sleep(3600)
"""


@scenario("F21")
def signal_while_opening(launcher: Launcher) -> int:
    """A hung import does not make the first SIGTERM wait; nothing starts."""
    install_distribution(
        launcher.site,
        "hanging-backend",
        entry_points={"hanging": "hanging_backend"},
        modules={"hanging_backend.py": HANGING_IMPORT_MODULE},
    )
    chassis = launcher.run("alpha,hanging")
    chassis.wait_for("hanging: import entered")

    chassis.send(signal.SIGTERM)
    code = chassis.finish()

    assert chassis.messages()[-2:] == [
        "SIGTERM received; shutting down (send it again to exit at once)",
        "start abandoned while the backends were being opened; no service was started",
    ]
    assert launcher.recorded() == []
    return code


@scenario("F22")
def repeated_signal_before_drain(launcher: Launcher) -> int:
    """Two signals handled before the drain begins: the drain still runs."""
    chassis = launcher.run("alpha,beta")
    chassis.wait_for(READY)

    # Stopped, the process receives both signals at once when it resumes, as
    # when GNU timeout signals it and then its process group.
    chassis.send(signal.SIGSTOP)
    chassis.send(signal.SIGTERM)
    chassis.send(signal.SIGINT)
    chassis.send(signal.SIGCONT)
    code = chassis.finish()

    shutdown_lines = [m for m in chassis.messages() if " received" in m]
    # Which of the two is handled first is up to the kernel, and the second
    # handler may run inside the first one's logging call: compare unordered.
    first_signal = (
        "SIGINT" if "SIGINT received; " in " ".join(shutdown_lines) else ("SIGTERM")
    )
    second_signal = {"SIGINT": "SIGTERM", "SIGTERM": "SIGINT"}[first_signal]
    assert sorted(shutdown_lines) == sorted(
        [
            f"{first_signal} received; shutting down (send it again to exit at once)",
            f"{second_signal} received again before the drain began; already "
            "shutting down (a signal during the drain exits at once)",
        ]
    )
    assert {"stopped alpha", "stopped beta"} <= set(launcher.recorded())
    assert "exiting now" not in chassis.output
    return code


#: A backend that takes SIGTERM and SIGINT over while it is imported.
HANDLER_THIEF_MODULE = """
import signal

from bgservice_core import hookimpl

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.default_int_handler)


class IdleService:
    def start(self):
        pass

    def stop(self):
        pass


@hookimpl
def bgservice_build_service(config):
    return IdleService()
"""


@scenario("F23")
def backend_replaces_signal_handlers(launcher: Launcher) -> int:
    """Handlers a backend replaced are reinstalled with a warning; SIGTERM drains."""
    install_distribution(
        launcher.site,
        "thief-backend",
        entry_points={"thief": "thief_backend"},
        modules={"thief_backend.py": HANDLER_THIEF_MODULE},
    )
    chassis = launcher.run("alpha,thief")
    chassis.wait_for(READY)

    chassis.send(signal.SIGTERM)
    code = chassis.finish()

    warnings = [m for m in chassis.messages() if "handler was replaced" in m]
    assert warnings == [
        f"the {name} handler was replaced while the backends were being opened "
        "(by an import or a constructor); reinstalled the chassis' own, since a "
        "backend must not handle the chassis' signals"
        for name in ("SIGINT", "SIGTERM")
    ]
    assert "stopped alpha" in launcher.recorded()
    return code


@scenario("F24")
def unusable_database(launcher: Launcher) -> int:
    """Every kind of unusable --db exits 3 with its message; nothing is opened."""
    not_sqlite = launcher.workdir / "notes.db"
    not_sqlite.write_text("not a database\n")
    missing = launcher.workdir / "missing" / "x.db"
    closed_port = "postgresql://bob:hunter2@127.0.0.1:1/nowhere"

    codes = set()
    for db in (str(not_sqlite), str(missing), closed_port):
        chassis = launcher.run("alpha", "--db", db)
        codes.add(chassis.finish())
        shown = db.replace("hunter2", "***")
        assert f"Error: cannot use {shown!r} as the tenant " in chassis.output
        assert "point --db or BGSERVICE_DB at a" in chassis.output
        assert "hunter2" not in chassis.output
    assert launcher.recorded() == []
    assert len(codes) == 1
    return codes.pop()


@scenario("F25")
def malformed_discovery_setting(launcher: Launcher) -> int:
    """Each malformed cache setting is quoted with what it expects; nothing starts."""
    expected = {
        ("BGSERVICE_DISCOVERY_CACHE", "maybe"): "expected on or off",
        ("BGSERVICE_CACHE_DIR", "relative/cache"): "expected an absolute path",
        ("BGSERVICE_CACHE_DIR", " "): "expected an absolute path",
    }

    codes = set()
    for (variable, value), expectation in expected.items():
        for backends in ("alpha", "nop"):  # named or not, the setting is checked
            with pytest.MonkeyPatch.context() as environment:
                environment.setenv(variable, value)
                chassis = launcher.run(backends)
            codes.add(chassis.finish())
            assert f"{variable}={value!r} is invalid: {expectation}" in chassis.output
    assert launcher.recorded() == []
    assert len(codes) == 1
    return codes.pop()
