"""ServiceRunner: ordered start with rollback, crash policy, one-deadline drain.

The scripted backend below is installed as a real distribution and opened
through its entry points; each test scripts its services through environment
variables. Tests of finer interleavings use small in-test services instead.
"""

from __future__ import annotations

import logging
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bgservice_core
from bgservice_core import (
    Config,
    CrashPolicy,
    DrainReport,
    ExitCode,
    ServiceCrashedError,
    ServiceRunner,
    ServiceStartError,
)
from tests.distributions import install_distribution

#: A backend whose services do what ``SCRIPT_<NAME>`` says, e.g.
#: ``SCRIPT_ALPHA="start=raise stop=barrier:3 worker=non-daemon crash=report"``.
#: Steps: build, start, stop, teardown (loops); actions: ok, raise, hang,
#: sleep:SECONDS, barrier:PARTIES, file:PATH (wait until it exists).
#: Each call is appended to the file named by ``SCRIPT_EVENTS``.
SCRIPTED_MODULE = """
import os
import threading
import time

from bgservice_core import LoopService, hookimpl

_barriers = {}
_barriers_lock = threading.Lock()


def script(name):
    words = os.environ.get("SCRIPT_" + name.upper(), "").split()
    return dict(word.split("=", 1) for word in words)


def record(event, name):
    with open(os.environ["SCRIPT_EVENTS"], "a") as events:
        events.write(f"{event} {name}\\n")


def act(action, name):
    verb, _, argument = action.partition(":")
    if verb == "raise":
        raise RuntimeError(f"{name} failed on purpose")
    if verb == "hang":
        threading.Event().wait()
    if verb == "sleep":
        time.sleep(float(argument))
    if verb == "barrier":
        with _barriers_lock:
            barrier = _barriers.setdefault(
                argument, threading.Barrier(int(argument), timeout=10)
            )
        barrier.wait()
    if verb == "file":
        deadline = time.monotonic() + 30
        while not os.path.exists(argument) and time.monotonic() < deadline:
            time.sleep(0.01)


class ScriptedService:
    def __init__(self, config, steps):
        self.config = config
        self.name = config.backend_name
        self.steps = steps
        self.stopping = threading.Event()
        self.worker = None

    def start(self):
        record("start", self.name)
        self.config.logger.info("start() entered")
        act(self.steps.get("start", "ok"), self.name)
        daemon = self.steps.get("worker", "daemon") == "daemon"
        self.worker = threading.Thread(
            target=self.work, name="scripted-" + self.name, daemon=daemon
        )
        self.worker.start()
        record("started", self.name)

    def work(self):
        if self.steps.get("crash") == "report":
            try:
                raise RuntimeError(f"{self.name} lost its connection")
            except RuntimeError as err:
                self.config.report_failure(err)
        self.stopping.wait()

    def stop(self):
        record("stop", self.name)
        self.config.logger.info("stop() entered")
        try:
            act(self.steps.get("stop", "ok"), self.name)
        finally:
            self.stopping.set()
            if self.worker is not None:
                self.worker.join()
        record("stopped", self.name)


class TickingService(LoopService):
    def __init__(self, config, steps):
        super().__init__(config, float(steps.get("period", "3600")))
        self.steps = steps
        self.ticks = 0

    def tick(self):
        self.ticks += 1
        record("tick", self.config.backend_name)
        if str(self.ticks) == self.steps.get("crash-on-tick"):
            raise RuntimeError(f"tick {self.ticks} failed on purpose")

    def teardown(self):
        record("teardown", self.config.backend_name)
        act(self.steps.get("teardown", "ok"), self.config.backend_name)


@hookimpl
def bgservice_build_service(config):
    steps = script(config.backend_name)
    act(steps.get("build", "ok"), config.backend_name)
    if steps.get("kind") == "loop":
        return TickingService(config, steps)
    return ScriptedService(config, steps)
"""

SCRIPTED_NAMES = ("alpha", "beta", "gamma", "delta")


def install_scripted(site: Path) -> None:
    """Install the scripted backend under the names in ``SCRIPTED_NAMES``."""
    install_distribution(
        site,
        "scripted-backends",
        entry_points={name: "scripted" for name in SCRIPTED_NAMES},
        modules={"scripted.py": SCRIPTED_MODULE},
        summary="Services that misbehave on request",
    )


def read_events(path: Path) -> list[str]:
    """Return the scripted services' recorded steps, oldest first."""
    return path.read_text().splitlines() if path.exists() else []


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)


def without_durations(text: str) -> str:
    """Replace every ``1.234s`` duration in ``text`` with ``Ns``."""
    return re.sub(r"\d+\.\d{3}s", "Ns", text)


@pytest.fixture
def events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the scripted services record their steps."""
    path = tmp_path / "events.txt"
    monkeypatch.setenv("SCRIPT_EVENTS", str(path))
    return path


@pytest.fixture
def scripted(site_dir: Path, events: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the scripted backend; return the events file."""
    install_scripted(site_dir)
    for name in SCRIPTED_NAMES:
        monkeypatch.delenv(f"SCRIPT_{name.upper()}", raising=False)
    return events


@pytest.fixture
def runner_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every line of the runner's logger, DEBUG included."""
    caplog.set_level(logging.DEBUG, logger="tests.runner")
    return caplog


@pytest.fixture
def no_new_threads() -> Iterator[None]:
    """Fail the test if a thread started during it is still alive at its end."""
    before = set(threading.enumerate())
    yield
    survivors = [t.name for t in threading.enumerate() if t not in before]
    assert survivors == [], f"threads still alive after the drain: {survivors}"


def make_runner(
    *,
    start_timeout: float = 5.0,
    slow_start: float = 1.0,
    crash_policy: CrashPolicy = CrashPolicy.SHUTDOWN,
) -> ServiceRunner:
    """A runner logging to ``tests.runner``, with a short start timeout."""
    return ServiceRunner(
        logger=logging.getLogger("tests.runner"),
        start_timeout=start_timeout,
        slow_start=slow_start,
        crash_policy=crash_policy,
    )


def open_scripted(
    names: str, runner: ServiceRunner
) -> dict[str, bgservice_core.Service]:
    """Open scripted services with a Config whose crashes go to ``runner``."""
    config = Config(
        logger=logging.getLogger("tests.service"),
        gate=_NoGate(),
        node_id="node-1.test.example",
        failure_handler=runner.report_failure,
    )
    return bgservice_core.open_by_name(names, config)


class _NoGate:
    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        raise AssertionError("no test service touches the gate")


class Probe:
    """An in-test service whose start() and stop() block until released."""

    def __init__(self, name: str, *, hold_start: bool = False) -> None:
        self.name = name
        self.calls: list[str] = []
        self.start_entered = threading.Event()
        self.stop_entered = threading.Event()
        self.release_start = threading.Event()
        self.release_stop = threading.Event()
        self.stop_error: BaseException | None = None
        self.stop_threads: list[threading.Thread] = []
        self.overlapped = False
        if not hold_start:
            self.release_start.set()

    def start(self) -> None:
        self.calls.append("start")
        self.start_entered.set()
        self.release_start.wait()
        self.calls.append("started")

    def stop(self) -> None:
        # A stop() while start() has not returned would race the start.
        self.overlapped |= self.calls[-1:] == ["start"]
        self.calls.append("stop")
        self.stop_threads.append(threading.current_thread())
        self.stop_entered.set()
        self.release_stop.wait()
        if self.stop_error is not None:
            raise self.stop_error


def released(*names: str) -> dict[str, Probe]:
    """Probes that neither block nor fail."""
    probes = {name: Probe(name) for name in names}
    for probe in probes.values():
        probe.release_stop.set()
    return probes


# -- start --------------------------------------------------------------------


@pytest.mark.usefixtures("no_new_threads")
def test_services_start_in_the_listed_order(scripted: Path) -> None:
    """Installed services start one after another, in the order listed."""
    runner = make_runner()
    runner.start(open_scripted("gamma, alpha, beta", runner))
    runner.drain(5.0)

    started = [e for e in read_events(scripted) if e.split()[0] in {"start", "started"}]
    assert started == [
        "start gamma",
        "started gamma",
        "start alpha",
        "started alpha",
        "start beta",
        "started beta",
    ]


@pytest.mark.usefixtures("no_new_threads")
def test_failing_start_rolls_back_in_reverse_order_and_names_the_backend(
    scripted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start() that raises: the earlier services stop newest first, none leaks."""
    monkeypatch.setenv("SCRIPT_GAMMA", "start=raise")
    runner = make_runner()
    services = open_scripted("alpha, beta, gamma, delta", runner)

    with pytest.raises(ServiceStartError) as caught:
        runner.start(services)

    assert without_durations(str(caught.value)) == (
        "service 'gamma' failed to start: start() raised RuntimeError after Ns: "
        "gamma failed on purpose; stopped again the services already started: "
        "beta, alpha"
    )
    assert caught.value.backend == "gamma"
    assert caught.value.rolled_back == ("beta", "alpha")
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert read_events(scripted)[-4:] == [
        "stop beta",
        "stopped beta",
        "stop alpha",
        "stopped alpha",
    ]
    assert "start delta" not in read_events(scripted)
    assert "stop gamma" not in read_events(scripted)


def test_start_that_does_not_return_in_time_fails_and_is_stopped_if_it_returns() -> (
    None
):
    """A hung start() is named, the others roll back, and it stops once it returns."""
    runner = make_runner(start_timeout=0.2)
    probes = released("first", "stuck")
    probes["stuck"].release_start.clear()

    with pytest.raises(ServiceStartError) as caught:
        runner.start(probes)

    assert str(caught.value) == (
        "service 'stuck' failed to start: start() did not return within 0.2s; "
        "stopped again the services already started: first"
    )
    assert probes["first"].calls == ["start", "started", "stop"]
    assert probes["stuck"].calls == ["start"]

    probes["stuck"].release_start.set()
    assert probes["stuck"].stop_entered.wait(5)
    assert not probes["stuck"].overlapped


def test_slow_start_is_logged_as_a_warning_with_its_duration(
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """A start() slower than slow_start still succeeds, with a warning."""
    runner = make_runner(slow_start=0.05)
    slow = Probe("slow", hold_start=True)
    threading.Timer(0.1, slow.release_start.set).start()

    runner.start({"slow": slow})

    started = [r for r in runner_log.records if "started in" in r.getMessage()]
    assert [(r.levelno, without_durations(r.getMessage())) for r in started] == [
        (
            logging.WARNING,
            "service 'slow' started in Ns; start() should return at once and "
            "leave the work to a background thread",
        )
    ]
    assert float(re.findall(r"(\d+\.\d+)s", started[0].getMessage())[0]) >= 0.05
    slow.release_stop.set()
    assert runner.drain(5.0).exit_code is ExitCode.OK


# -- drain --------------------------------------------------------------------


@pytest.mark.usefixtures("no_new_threads")
def test_drain_stops_every_service_at_the_same_time(
    scripted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stop() waits at a barrier only all of them together can pass."""
    for name in ("ALPHA", "BETA", "GAMMA"):
        monkeypatch.setenv(f"SCRIPT_{name}", "stop=barrier:3")
    runner = make_runner()
    runner.start(open_scripted("alpha, beta, gamma", runner))

    report = runner.drain(30.0)

    assert report.failed == {}
    assert sorted(report.stopped) == ["alpha", "beta", "gamma"]
    assert report.exit_code is ExitCode.OK


def test_drain_gives_all_services_one_shared_deadline() -> None:
    """Four stops that hang cost one timeout together, not one each."""
    runner = make_runner()
    probes = {name: Probe(name) for name in ("a", "b", "c", "d")}
    runner.start(probes)

    began = time.monotonic()
    report = runner.drain(1.0)
    elapsed = time.monotonic() - began

    assert report.still_draining == ("d", "c", "b", "a")
    assert report.exit_code is ExitCode.DRAIN_TIMEOUT
    # Sequential deadlines would take at least 4s; this bound only rules that out.
    assert elapsed < 3.5
    for probe in probes.values():
        probe.release_stop.set()


def test_stop_that_raises_does_not_keep_the_others_from_draining(
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """Every stop runs although two raise, and both errors are reported."""
    runner = make_runner()
    probes = released("a", "b", "c")
    probes["a"].stop_error = RuntimeError("a's socket is gone")
    probes["c"].stop_error = OSError("c's disk is full")
    runner.start(probes)

    report = runner.drain(5.0)

    assert report.stopped == ("b",)
    assert report.failed == {"a": probes["a"].stop_error, "c": probes["c"].stop_error}
    assert report.exit_code is ExitCode.DRAIN_ERROR
    # Failures are listed in the order their stops began: newest service first.
    assert report.summary() == (
        "drain finished; stopped 1: b; failed 2: c, a; still draining 0: none"
    )
    logged = {r.exc_info[1] for r in runner_log.records if r.exc_info}
    assert logged == {probes["a"].stop_error, probes["c"].stop_error}


def test_stop_that_hangs_is_named_when_the_deadline_passes(
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """The drain returns at its deadline and names the stop still running."""
    runner = make_runner()
    probes = released("quick", "stuck")
    probes["stuck"].release_stop.clear()
    runner.start(probes)

    report = runner.drain(0.2)

    assert report == DrainReport(stopped=("quick",), still_draining=("stuck",))
    assert report.exit_code is ExitCode.DRAIN_TIMEOUT
    assert runner_log.records[-1].levelno == logging.ERROR
    assert runner_log.records[-1].getMessage() == (
        "drain finished; stopped 1: quick; failed 0: none; still draining 1: stuck"
    )
    probes["stuck"].release_stop.set()


def test_stops_run_outside_the_main_thread() -> None:
    """No stop() runs in the main thread, where KeyboardInterrupt is raised."""
    runner = make_runner()
    probes = released("a", "b")
    runner.start(probes)

    runner.drain(5.0)

    threads = [t for probe in probes.values() for t in probe.stop_threads]
    assert len(threads) == 2
    assert threading.main_thread() not in threads


def test_ctrl_c_during_a_stop_does_not_keep_the_others_from_finishing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyboardInterrupt in the draining thread leaves every stop() running."""
    runner = make_runner()
    probes = released("interrupting", "slow")
    probes["slow"].release_stop.clear()
    delivered = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if not delivered.is_set():
            delivered.set()
            raise KeyboardInterrupt

    def interrupt() -> None:
        # Sent again until it lands: one arriving just before the main thread
        # blocks wakes nothing, the lost-wakeup race every Python program has.
        main = threading.main_thread().ident
        assert main is not None
        while not delivered.wait(0.05):
            signal.pthread_kill(main, signal.SIGINT)

    monkeypatch.setattr(probes["interrupting"], "stop", interrupt)
    runner.start(probes)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.drain(30.0)
    finally:
        signal.signal(signal.SIGINT, previous)
    probes["slow"].release_stop.set()
    report = runner.drain(10.0)

    assert sorted(report.stopped) == ["interrupting", "slow"]
    assert probes["slow"].calls.count("stop") == 1


# -- idempotence --------------------------------------------------------------


@pytest.mark.usefixtures("no_new_threads")
def test_draining_twice_stops_each_service_once(
    scripted: Path,
) -> None:
    """A second drain reports again without calling stop() again."""
    runner = make_runner()
    runner.start(open_scripted("alpha, beta", runner))

    first = runner.drain(5.0)
    second = runner.drain(5.0)

    assert first == second
    stops = [e for e in read_events(scripted) if e.startswith("stop ")]
    assert sorted(stops) == ["stop alpha", "stop beta"]


def test_drain_before_start_stops_nothing() -> None:
    """Draining a runner that started nothing reports nothing and never hangs."""
    report = make_runner().drain(1.0)

    assert report == DrainReport()
    assert report.exit_code is ExitCode.OK


def test_drain_during_a_start_stops_it_only_after_start_returns() -> None:
    """A drain mid-start waits for that start(), stops it, and starts no more."""
    runner = make_runner()
    probes = released("first", "starting", "never")
    probes["starting"].release_start.clear()
    starter = threading.Thread(target=runner.start, args=(probes,))
    starter.start()
    assert probes["starting"].start_entered.wait(5)

    drainer = threading.Thread(target=runner.drain, args=(10.0,))
    drainer.start()
    wait_until(lambda: probes["first"].calls[-1:] == ["stop"])
    assert "stop" not in probes["starting"].calls
    probes["starting"].release_start.set()
    drainer.join(10)
    starter.join(10)

    assert runner.report().stopped in {("first", "starting"), ("starting", "first")}
    assert probes["starting"].calls == ["start", "started", "stop"]
    assert not probes["starting"].overlapped
    assert probes["never"].calls == []


def test_shutdown_during_a_slow_start_aborts_the_start_sequence(
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """start() returns at once when asked to shut down, leaving the rest unstarted."""
    runner = make_runner()
    probes = released("first", "slow", "never")
    probes["slow"].release_start.clear()
    threading.Thread(
        target=lambda: (
            probes["slow"].start_entered.wait(5),
            runner.request_shutdown(),
        )
    ).start()

    runner.start(probes)
    assert probes["slow"].calls == ["start"]
    threading.Timer(0.05, probes["slow"].release_start.set).start()
    report = runner.drain(10.0)

    assert sorted(report.stopped) == ["first", "slow"]
    assert probes["never"].calls == []
    assert not probes["slow"].overlapped
    assert (
        "shutdown requested while service 'slow' was starting; it is stopped once "
        "its start() returns" in runner_log.messages
    )
    assert "shutdown requested during startup; not starting never" in (
        runner_log.messages
    )


def test_drain_names_a_start_that_never_returns() -> None:
    """A start() that hangs past shutdown is named by the drain, not waited for."""
    runner = make_runner()
    probes = released("stuck")
    probes["stuck"].release_start.clear()
    threading.Thread(
        target=lambda: (
            probes["stuck"].start_entered.wait(5),
            runner.request_shutdown(),
        )
    ).start()
    runner.start(probes)

    report = runner.drain(0.2)

    assert report.still_draining == ("stuck",)
    assert probes["stuck"].calls == ["start"]
    probes["stuck"].release_start.set()


def test_a_start_failing_after_shutdown_is_reported_by_the_drain() -> None:
    """A start() that raises after it was abandoned is a failure of the drain."""
    runner = make_runner()
    broken = Probe("broken", hold_start=True)
    failure = RuntimeError("broken could not bind")

    def start() -> None:
        broken.start_entered.set()
        broken.release_start.wait()
        raise failure

    broken.start = start  # type: ignore[method-assign]
    threading.Thread(
        target=lambda: (broken.start_entered.wait(5), runner.request_shutdown())
    ).start()
    runner.start({"broken": broken})
    broken.release_start.set()

    report = runner.drain(5.0)

    assert list(report.failed) == ["broken"]
    assert isinstance(report.failed["broken"], ServiceStartError)
    assert report.failed["broken"].__cause__ is failure
    assert "stop" not in broken.calls


# -- crashes ------------------------------------------------------------------


def _crash() -> RuntimeError:
    try:
        raise RuntimeError("lost the database")
    except RuntimeError as err:
        return err


def test_report_policy_logs_the_crash_with_traceback_and_keeps_running(
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """Under REPORT a crash is logged once with its traceback and changes nothing."""
    runner = make_runner(crash_policy=CrashPolicy.REPORT)
    runner.start(released("a"))
    error = _crash()

    runner.report_failure("a", error)

    crashes = [r for r in runner_log.records if "crashed" in r.getMessage()]
    assert [r.getMessage() for r in crashes] == [
        "service 'a' crashed while running (crash policy: report)"
    ]
    assert crashes[0].exc_info is not None
    assert crashes[0].exc_info[1] is error
    traceback = logging.Formatter().formatException(crashes[0].exc_info)
    assert traceback.startswith("Traceback (most recent call last):")
    assert traceback.endswith("RuntimeError: lost the database")
    assert not runner.shutdown_requested
    report = runner.drain(5.0)
    assert report.crashed == {"a": error}
    assert report.exit_code is ExitCode.OK


def test_shutdown_policy_requests_shutdown_and_fails_the_exit_code() -> None:
    """Under SHUTDOWN a crash ends wait() and the drain exits SERVICE_CRASHED."""
    runner = make_runner(crash_policy=CrashPolicy.SHUTDOWN)
    runner.start(released("a", "b"))
    threading.Thread(target=runner.report_failure, args=("b", _crash())).start()

    runner.wait()
    report = runner.drain(5.0)

    assert report.exit_code is ExitCode.SERVICE_CRASHED
    assert sorted(report.stopped) == ["a", "b"]
    assert report.summary().endswith("; crashed while running: b")


def test_the_same_crash_reported_twice_is_logged_once(
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """Reporting one exception twice leaves one log line."""
    runner = make_runner()
    error = _crash()

    runner.report_failure("a", error)
    runner.report_failure("a", error)

    assert sum("crashed" in message for message in runner_log.messages) == 1


@pytest.mark.usefixtures("no_new_threads")
def test_loop_crash_after_start_is_reported_once_and_stop_stays_quiet(
    scripted: Path,
    monkeypatch: pytest.MonkeyPatch,
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """A LoopService tick raising after start() is a crash, logged exactly once."""
    monkeypatch.setenv("SCRIPT_ALPHA", "kind=loop period=0.01 crash-on-tick=2")
    runner = make_runner(crash_policy=CrashPolicy.SHUTDOWN)
    runner.start(open_scripted("alpha", runner))

    runner.wait()
    report = runner.drain(5.0)

    assert report.stopped == ("alpha",)
    assert str(report.crashed["alpha"]) == "tick 2 failed on purpose"
    with_traceback = [r.getMessage() for r in runner_log.records if r.exc_info]
    assert with_traceback == [
        "service 'alpha' crashed while running (crash policy: shutdown)"
    ]


@pytest.mark.usefixtures("no_new_threads")
def test_loop_crash_while_stopping_fails_the_drain_once(
    scripted: Path,
    monkeypatch: pytest.MonkeyPatch,
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """A teardown that raises during the drain is a failed stop, logged once."""
    monkeypatch.setenv("SCRIPT_ALPHA", "kind=loop teardown=raise")
    runner = make_runner()
    runner.start(open_scripted("alpha", runner))

    report = runner.drain(5.0)

    error = report.failed["alpha"]
    assert isinstance(error, ServiceCrashedError)
    assert str(error.__cause__) == "alpha failed on purpose"
    assert report.crashed == {}
    assert report.exit_code is ExitCode.DRAIN_ERROR
    logged = [
        without_durations(r.getMessage()) for r in runner_log.records if r.exc_info
    ]
    assert logged == ["service 'alpha' failed to stop after Ns"]


# -- observability and leaks --------------------------------------------------


def test_every_lifecycle_step_logs_one_line_with_name_and_duration(
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """Start, stop and drain each log one line naming the backend."""
    runner = make_runner()
    runner.start(released("a", "b"))

    runner.drain(5.0)

    lines = [without_durations(m) for m in runner_log.messages]
    assert lines[:5] == [
        "starting service 'a'",
        "service 'a' started in Ns",
        "starting service 'b'",
        "service 'b' started in Ns",
        "draining 2 service(s) within 5s: b, a",
    ]
    # The stops run concurrently, so only the set of these lines is fixed.
    assert sorted(lines[5:9]) == [
        "service 'a' stopped in Ns",
        "service 'b' stopped in Ns",
        "stopping service 'a'",
        "stopping service 'b'",
    ]
    assert re.fullmatch(
        r"drain finished; stopped 2: (b, a|a, b); failed 0: none; "
        r"still draining 0: none",
        lines[9],
    )
    assert len(lines) == 10


def test_no_thread_started_by_a_service_survives_a_completed_drain(
    scripted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threading.enumerate() after the drain equals what it was before the start."""
    monkeypatch.setenv("SCRIPT_BETA", "kind=loop period=0.01")
    monkeypatch.setenv("SCRIPT_GAMMA", "worker=non-daemon")
    before = set(threading.enumerate())
    runner = make_runner()
    runner.start(open_scripted("alpha, beta, gamma", runner))
    during = set(threading.enumerate()) - before

    report = runner.drain(5.0)
    after = set(threading.enumerate()) - before

    assert {t.name for t in during} >= {
        "scripted-alpha",
        "bgservice-loop-beta",
        "scripted-gamma",
    }
    assert report.exit_code is ExitCode.OK
    assert after == set()


def test_drain_report_exit_codes_follow_the_worst_outcome() -> None:
    """A hung stop outranks a raising one, which outranks a crash."""
    error = RuntimeError("x")
    expected = [
        (DrainReport(), ExitCode.OK),
        (DrainReport(crashed={"a": error}), ExitCode.SERVICE_CRASHED),
        (
            DrainReport(crashed={"a": error}, crash_policy=CrashPolicy.REPORT),
            ExitCode.OK,
        ),
        (
            DrainReport(failed={"a": error}, crashed={"b": error}),
            ExitCode.DRAIN_ERROR,
        ),
        (
            DrainReport(failed={"a": error}, still_draining=("b",)),
            ExitCode.DRAIN_TIMEOUT,
        ),
    ]

    assert [(r, r.exit_code) for r, _ in expected] == expected


# -- arguments and late starts --------------------------------------------------


@pytest.mark.parametrize("parameter", ["start_timeout", "slow_start"])
@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, 1e300])
def test_runner_rejects_a_timeout_that_is_no_usable_deadline(
    parameter: str, value: float
) -> None:
    """Zero, negative, nan, infinite and absurd timeouts are a ValueError."""
    with pytest.raises(ValueError, match="must be a finite number") as caught:
        ServiceRunner(**{parameter: value})

    assert str(caught.value) == (
        f"{parameter} must be a finite number of seconds greater than 0 and at "
        f"most 604800 (one week); got {value!r}"
    )


@pytest.mark.parametrize("value", [True, "10", None])
def test_runner_rejects_a_timeout_that_is_no_number(value: object) -> None:
    """A bool, a string or None as a timeout is a TypeError naming its type."""
    with pytest.raises(TypeError) as caught:
        ServiceRunner(start_timeout=value)  # type: ignore[arg-type]

    assert str(caught.value) == (
        f"start_timeout must be a number of seconds, not "
        f"{type(value).__name__} {value!r}"
    )


@pytest.mark.parametrize("value", [0, -5, math.nan, math.inf, False])
def test_drain_rejects_an_unusable_timeout_before_stopping_anything(
    value: float,
) -> None:
    """drain() with no usable deadline raises and leaves the services running."""
    runner = make_runner()
    probes = released("only")
    runner.start(probes)

    with pytest.raises((TypeError, ValueError), match="timeout must be a"):
        runner.drain(value)

    assert probes["only"].calls == ["start", "started"]
    assert not runner.drain_begun
    assert runner.drain(5.0).exit_code is ExitCode.OK


def test_a_start_returning_after_the_timeout_is_never_logged_as_started(
    runner_log: pytest.LogCaptureFixture,
) -> None:
    """A late start() is logged as counted failed, with its real duration."""
    runner = make_runner(start_timeout=0.2)
    late = Probe("late", hold_start=True)
    late.release_stop.set()
    threading.Timer(0.4, late.release_start.set).start()

    with pytest.raises(ServiceStartError):
        runner.start({"late": late})
    assert late.stop_entered.wait(5)

    messages = [r.getMessage() for r in runner_log.records]
    assert not [m for m in messages if "started in" in m]
    returned = [m for m in messages if "returned after the start timeout" in m]
    assert [without_durations(m) for m in returned] == [
        "service 'late' returned after the start timeout, Ns; counted as failed"
    ]
    # The real duration: past the 0.2 s timeout, near the 0.4 s release (the
    # timer starts a moment before the call does, so not quite 0.4 s).
    assert float(re.findall(r"(\d+\.\d+)s", returned[0])[0]) >= 0.3


def test_never_stopped_names_started_services_until_their_stop_begins() -> None:
    """never_stopped() lists what no drain has reached; drain_begun follows it."""
    runner = make_runner()
    runner.start(released("first", "second"))

    assert runner.never_stopped() == ["first", "second"]
    assert not runner.drain_begun
    runner.drain(5.0)
    assert runner.never_stopped() == []
    assert runner.drain_begun
