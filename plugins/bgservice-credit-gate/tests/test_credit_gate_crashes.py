"""Restarts and ``kill -9`` mid-tick: the Gate's call log against the plan.

Each run is a process of its own that opens credit-gate through its entry
point, with a Gate that appends every call that took effect to a file and can
freeze just before or just after a chosen call, for the test to kill it there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from credit_gate_testing import Call, Databases, engage, release

TIMEOUT = 30.0

CHASSIS = """
import json, logging, os, signal, sys, threading, time
from pathlib import Path

import bgservice_core


class FileGate:
    def __init__(self):
        self.log = Path(os.environ["GATE_LOG"])
        self.marker = Path(os.environ["FROZEN_MARKER"])

    def set_gate(self, slug, suspended, deny_status, deny_reason):
        call = f"{slug}:{'engage' if suspended else 'release'}"
        if call == os.environ.get("FREEZE_BEFORE"):
            self.freeze()
        with self.log.open("a") as log:
            entry = [slug, suspended, deny_status, deny_reason]
            log.write(json.dumps(entry) + "\\n")
            log.flush()
            os.fsync(log.fileno())
        if call == os.environ.get("FREEZE_AFTER"):
            self.freeze()

    def freeze(self):
        self.marker.write_text("frozen")
        time.sleep(3600)


logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(message)s")
logger = logging.getLogger("chassis")
config = bgservice_core.Config(logger, FileGate(), "node-1")
(service,) = bgservice_core.open("credit-gate", config)
stopping = threading.Event()
signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
service.start()
stopping.wait()
service.stop()
"""


class Run:
    """One chassis process; its log is kept in a file."""

    def __init__(self, workdir: Path, number: int, **env: str) -> None:
        self.log = workdir / f"run-{number}.log"
        self.marker = workdir / f"run-{number}.frozen"
        script = workdir / "chassis.py"
        script.write_text(CHASSIS)
        environment = {
            **os.environ,
            "GATE_LOG": str(workdir / "gate.log"),
            "FROZEN_MARKER": str(self.marker),
            **env,
        }
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                [sys.executable, str(script)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
            )

    def ticks(self) -> int:
        return self.log.read_text().count("gate change(s) due")

    def wait(self, what: str, condition: Callable[[], bool]) -> None:
        """Wait for ``condition``; fail with the log if it never holds."""
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"never {what}:\n{self.log.read_text()}")
            time.sleep(0.02)

    def wait_until_frozen(self) -> None:
        self.wait("froze", self.marker.exists)

    def wait_for_more_ticks(self, count: int) -> None:
        """Wait until ``count`` more ticks have finished."""
        target = self.ticks() + count
        self.wait(f"ticked {count} more times", lambda: self.ticks() >= target)

    def kill_9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=TIMEOUT)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=TIMEOUT) == 0, self.log.read_text()


class Runs:
    """Start runs one after another on the same databases and Gate log."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Run] = []

    def start(self, **env: str) -> Run:
        run = Run(self.workdir, len(self.started) + 1, **env)
        self.started.append(run)
        return run

    def calls(self) -> list[Call]:
        """The Gate calls that took effect, across all runs, in order."""
        path = self.workdir / "gate.log"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [tuple(json.loads(line)) for line in lines]


@pytest.fixture
def runs(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runs]:
    """Chassis runs ticking every 0.05 s; any left running is killed after."""
    monkeypatch.setenv("BGSERVICE_CREDIT_PERIOD", "0.05")
    started = Runs(tmp_path)
    yield started
    for run in started.started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def test_kill_9_mid_tick_loses_and_repeats_nothing(
    databases: Databases, runs: Runs
) -> None:
    """Killed before a Gate call, the next run makes it, once; graceful too."""
    databases.set_balances(alpha=0, beta=10, gamma=-5)
    first = runs.start(FREEZE_BEFORE="gamma:engage")
    first.wait_until_frozen()
    first.kill_9()
    assert runs.calls() == [engage("alpha")]

    second = runs.start()
    second.wait("engaged gamma", lambda: len(runs.calls()) == 2)
    databases.set_balances(alpha=50)
    second.wait("released alpha", lambda: len(runs.calls()) == 3)
    second.wait_for_more_ticks(2)
    second.stop()

    databases.set_balances(gamma=100)
    third = runs.start(FREEZE_BEFORE="gamma:release")
    third.wait_until_frozen()
    third.kill_9()

    fourth = runs.start()
    fourth.wait("released gamma", lambda: len(runs.calls()) == 4)
    fourth.wait_for_more_ticks(3)
    fourth.stop()

    engages = [engage("alpha"), engage("gamma")]
    assert runs.calls() == [*engages, release("alpha"), release("gamma")]


def test_kill_9_after_a_call_and_before_its_record_repeats_that_call_only(
    databases: Databases, runs: Runs
) -> None:
    """The one window: a call that took effect but was not yet recorded."""
    databases.set_balances(alpha=0, gamma=-5)
    first = runs.start(FREEZE_AFTER="gamma:engage")
    first.wait_until_frozen()
    first.kill_9()
    assert runs.calls() == [engage("alpha"), engage("gamma")]

    second = runs.start()
    second.wait("engaged gamma again", lambda: len(runs.calls()) == 3)
    second.wait_for_more_ticks(3)
    second.stop()

    # At least once, never lost: the repeat is harmless, as engaging is
    # idempotent, and it is the only one.
    assert runs.calls() == [engage("alpha"), engage("gamma"), engage("gamma")]


def test_a_pending_release_survives_kill_9_after_the_ledger_changed(
    databases: Databases, runs: Runs
) -> None:
    """Killed before recording an engage, then topped up: it is released."""
    databases.set_balances(alpha=0)
    first = runs.start(FREEZE_AFTER="alpha:engage")
    first.wait_until_frozen()
    first.kill_9()
    databases.set_balances(alpha=20)

    second = runs.start()
    second.wait("released alpha", lambda: len(runs.calls()) == 2)
    second.wait_for_more_ticks(3)
    second.stop()

    assert runs.calls() == [engage("alpha"), release("alpha")]
