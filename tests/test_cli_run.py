"""``bgservice run`` as a process: start order, drain, signals, log lines.

Each test runs the real command in a subprocess against the scripted backend
distribution (see tests/test_lifecycle.py), installed into ``site_dir`` whose
PYTHONPATH the process inherits. Readiness is always a log line, never a sleep.
The faults each get a scenario in tests/test_fault_table.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.test_lifecycle import install_scripted, read_events, without_durations

#: Seconds a process may take to show a line or exit: generous, since the
#: machine is shared; a test that passes never waits this long.
PATIENCE = 30.0

NODE_ID = "node-1.test.example"

_LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+)\s+(?P<logger>\S+): (?P<text>.*)$")


class Chassis:
    """One ``bgservice run`` process whose output lines can be awaited."""

    def __init__(self, command: list[str], env: Mapping[str, str], cwd: Path):
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(env),
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._closed = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        self.process.stdout.close()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        """Everything the process has printed so far."""
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str) -> str:
        """Return the first line matching ``pattern``, waiting for it to appear."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + PATIENCE
        with self._changed:
            while True:
                found = next((line for line in self.lines if regex.search(line)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    break
                self._changed.wait(remaining)
        raise AssertionError(f"no line matches {pattern!r}; output:\n{self.output}")

    def send(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the process."""
        self.process.send_signal(signum)

    def finish(self) -> int:
        """Wait for the process to exit and return its exit code."""
        try:
            code = self.process.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"bgservice run hung; output:\n{self.output}"
            ) from None
        self._reader.join(PATIENCE)
        return code

    def kill(self) -> None:
        """Kill the process if it still runs, and stop reading its output."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(PATIENCE)

    def messages(self, logger: str = "bgservice.chassis") -> list[str]:
        """The text of each log line from ``logger``, durations as ``Ns``."""
        found = [_LOG_LINE.match(line) for line in self.output.splitlines()]
        return [
            without_durations(match["text"])
            for match in found
            if match is not None and match["logger"] == logger
        ]


class Launcher:
    """Starts ``bgservice run`` processes over the scripted backend.

    :param site: the site directory the processes import backends from.
    :param workdir: the processes' working directory, events and release files.
    """

    def __init__(self, site: Path, workdir: Path) -> None:
        self.site = site
        self.workdir = workdir
        self.events = workdir / "events.txt"
        self._started: list[Chassis] = []
        install_scripted(site)

    def run(
        self,
        names: str,
        *options: str,
        scripts: Mapping[str, str] | None = None,
        executable: list[str] | None = None,
    ) -> Chassis:
        """Start ``bgservice run NAMES`` with the services scripted as given.

        :param options: more options; they override the short test defaults.
        :param scripts: backend name to its script, e.g. ``{"alpha": "stop=raise"}``.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCRIPT_")}
        env["SCRIPT_EVENTS"] = str(self.events)
        for name, steps in (scripts or {}).items():
            env[f"SCRIPT_{name.upper()}"] = steps

        command = executable or [sys.executable, "-m", "bgservice_core._cli"]
        defaults = ["--drain-timeout", "10", "--start-timeout", "10"]
        chassis = Chassis(
            [
                *command,
                "run",
                names,
                "--db",
                str(self.workdir / "chassis.db"),
                "--node-id",
                NODE_ID,
                "--log-level",
                "DEBUG",
                *defaults,
                *options,
            ],
            env,
            self.workdir,
        )
        self._started.append(chassis)
        return chassis

    def release_file(self, name: str) -> Path:
        """The file whose creation lets ``name``'s ``file:`` step go on."""
        return self.workdir / f"release-{name}"

    def recorded(self) -> list[str]:
        """The steps the scripted services recorded, oldest first."""
        return read_events(self.events)

    def close(self) -> None:
        """Kill whatever process a failing test left running."""
        for chassis in self._started:
            chassis.kill()


@pytest.fixture
def launcher(site_dir: Path, tmp_path: Path) -> Iterator[Launcher]:
    """A Launcher over a fresh site directory and working directory."""
    launched = Launcher(site_dir, tmp_path)
    yield launched
    launched.close()


READY = r"bgservice\.chassis: running \d+ service\(s\)"


def entered(name: str, method: str) -> str:
    """The pattern of the line a scripted service logs on entering ``method``."""
    return rf"bgservice\.service\.{name}: {method}\(\) entered"


# -- start order and observability --------------------------------------------


def test_services_start_in_order_and_every_step_logs_one_line(
    launcher: Launcher,
) -> None:
    """Start in listed order, drain on SIGINT, each step named and timed."""
    chassis = launcher.run("gamma,alpha,beta")
    chassis.wait_for(READY)

    chassis.send(signal.SIGINT)

    assert chassis.finish() == 0
    lines = chassis.messages()
    assert lines[:8] == [
        "starting service 'gamma'",
        "service 'gamma' started in Ns",
        "starting service 'alpha'",
        "service 'alpha' started in Ns",
        "starting service 'beta'",
        "service 'beta' started in Ns",
        f"running 3 service(s) as node {NODE_ID!r}; SIGINT or SIGTERM drains them",
        "SIGINT received; shutting down (send it again to exit at once)",
    ]
    assert lines[8] == "draining 3 service(s) within 10s: beta, alpha, gamma"
    assert sorted(lines[9:15]) == sorted(
        [f"stopping service {n!r}" for n in ("alpha", "beta", "gamma")]
        + [f"service {n!r} stopped in Ns" for n in ("alpha", "beta", "gamma")]
    )
    assert re.fullmatch(
        r"drain finished; stopped 3: \w+, \w+, \w+; failed 0: none; "
        r"still draining 0: none",
        lines[15],
    )
    assert len(lines) == 16
    assert [e for e in launcher.recorded() if e.startswith("start ")] == [
        "start gamma",
        "start alpha",
        "start beta",
    ]


def test_the_installed_bgservice_script_runs_the_same_chassis(
    launcher: Launcher,
) -> None:
    """The console script next to the interpreter starts and drains like -m."""
    script = Path(sys.executable).with_name("bgservice")
    if not script.exists():
        pytest.skip("no bgservice script beside this interpreter")
    chassis = launcher.run("alpha", executable=[str(script)])
    chassis.wait_for(READY)

    chassis.send(signal.SIGTERM)

    assert chassis.finish() == 0
    assert launcher.recorded() == [
        "start alpha",
        "started alpha",
        "stop alpha",
        "stopped alpha",
    ]


def test_drain_runs_every_stop_at_the_same_time(launcher: Launcher) -> None:
    """Three stops that meet at a barrier only pass it together: exit 0."""
    scripts = {name: "stop=barrier:3" for name in ("alpha", "beta", "gamma")}
    chassis = launcher.run("alpha,beta,gamma", scripts=scripts)
    chassis.wait_for(READY)

    chassis.send(signal.SIGTERM)

    assert chassis.finish() == 0, chassis.output
    assert sorted(e for e in launcher.recorded() if e.startswith("stopped ")) == [
        "stopped alpha",
        "stopped beta",
        "stopped gamma",
    ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_shutdown_signal_while_running_drains_and_exits_0(
    launcher: Launcher, signum: signal.Signals
) -> None:
    """SIGINT and SIGTERM both drain every service and exit 0."""
    chassis = launcher.run("alpha,beta")
    chassis.wait_for(READY)

    chassis.send(signum)

    assert chassis.finish() == 0
    assert f"{signum.name} received; shutting down" in chassis.output
    assert sorted(e for e in launcher.recorded() if e.startswith("stopped ")) == [
        "stopped alpha",
        "stopped beta",
    ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_shutdown_signal_during_a_slow_start_aborts_it_and_rolls_back(
    launcher: Launcher, signum: signal.Signals
) -> None:
    """A signal mid-start starts nothing more; the starting one is stopped after."""
    release = launcher.release_file("beta")
    chassis = launcher.run(
        "alpha,beta,gamma", scripts={"beta": f"start=file:{release}"}
    )
    chassis.wait_for(entered("beta", "start"))

    chassis.send(signum)
    chassis.wait_for("shutdown requested while service 'beta' was starting")
    release.touch()

    assert chassis.finish() == 0, chassis.output
    events = launcher.recorded()
    assert "start gamma" not in events
    assert events.index("started beta") < events.index("stop beta")
    assert {"stopped alpha", "stopped beta"} <= set(events)
    assert "shutdown requested during startup; not starting gamma" in chassis.output


def test_start_failure_names_the_backend_and_stops_the_others_newest_first(
    launcher: Launcher,
) -> None:
    """Exit 5 with one error line; alpha and beta stop in reverse order."""
    chassis = launcher.run("alpha,beta,gamma,delta", scripts={"gamma": "start=raise"})

    assert chassis.finish() == 5
    assert chassis.messages()[-1] == (
        "service 'gamma' failed to start: start() raised RuntimeError after Ns: "
        "gamma failed on purpose; stopped again the services already started: "
        "beta, alpha"
    )
    events = launcher.recorded()
    assert events[-4:] == ["stop beta", "stopped beta", "stop alpha", "stopped alpha"]
    assert "start delta" not in events
    assert "stop gamma" not in events


def test_empty_backend_list_exits_0_with_a_hint(launcher: Launcher) -> None:
    """No names and no variable: a warning saying how to name services, exit 0."""
    chassis = launcher.run("")

    assert chassis.finish() == 0
    assert chassis.messages() == [
        "no background services named; pass names (bgservice run heartbeat) or "
        "set BGSERVICE_BACKGROUND_SERVICES; see bgservice list"
    ]


def test_run_help_lists_every_exit_code() -> None:
    """The help text documents each exit code the command can give."""
    completed = subprocess.run(
        [sys.executable, "-m", "bgservice_core._cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )

    for code in range(10):
        assert re.search(rf"^\s+(.*\s)?{code}  \S", completed.stdout, re.MULTILINE)


def test_shutdown_signal_interrupts_a_constructor_that_hangs(
    launcher: Launcher,
) -> None:
    """SIGINT while a constructor hangs abandons the start and exits 0 at once."""
    chassis = launcher.run("alpha,beta", scripts={"beta": "build=hang"})
    chassis.wait_for(r"imported backend 'beta'")

    chassis.send(signal.SIGINT)

    assert chassis.finish() == 0
    assert chassis.messages()[-1] == (
        "start abandoned while the backends were being opened; no service was started"
    )
    assert launcher.recorded() == []


def test_unusable_db_exits_3_before_any_backend_is_imported(
    launcher: Launcher,
) -> None:
    """A --db in a missing directory is a configuration error, not an internal one."""
    missing = launcher.workdir / "missing" / "x.db"

    chassis = launcher.run("alpha", "--db", str(missing))

    assert chassis.finish() == 3
    [line] = chassis.output.splitlines()
    # The reason between the two is the tenant store's to word.
    assert line.startswith(f"Error: cannot use {str(missing)!r} as the tenant ")
    assert line.endswith("; point --db or BGSERVICE_DB at a writable SQLite file")
    assert launcher.recorded() == []


@pytest.mark.parametrize("blank", ["", "  ", "\t"])
def test_a_blank_node_id_is_a_usage_error(blank: str, tmp_path: Path) -> None:
    """Rows and log lines need a real node name: a blank --node-id exits 2."""
    from click.testing import CliRunner

    from bgservice_core._cli import main

    result = CliRunner().invoke(
        main, ["run", "heartbeat", "--node-id", blank, "--db", str(tmp_path / "t.db")]
    )

    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: Invalid value for '--node-id': {blank!r} is blank; give this node "
        "a stable name such as gw-1.example.net, or leave the option out to use "
        "the host's FQDN"
    )
    assert not (tmp_path / "t.db").exists()
