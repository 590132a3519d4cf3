"""LoopService: every period do one tick, stop promptly, never lose a crash."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import pytest

from bgservice_core import Config, LoopService, ServiceCrashedError

#: Generous: proves "did not wait for the period", never measures speed.
PROMPT = 5.0


@dataclasses.dataclass
class Crashes:
    """A failure handler that remembers what it was given."""

    reported: list[tuple[str, BaseException]] = dataclasses.field(default_factory=list)
    arrived: threading.Event = dataclasses.field(default_factory=threading.Event)

    def __call__(self, backend: str, error: BaseException) -> None:
        self.reported.append((backend, error))
        self.arrived.set()


class Recorder(LoopService):
    """A loop whose steps record their thread and run what the test sets."""

    def __init__(self, config: Config, period: float = 3600.0) -> None:
        super().__init__(config, period)
        self.steps: list[tuple[str, threading.Thread]] = []
        self.ticked = threading.Event()
        self.on_tick: Callable[[int], None] = lambda count: None
        self.on_teardown: Callable[[], None] = lambda: None
        self.on_setup: Callable[[], None] = lambda: None
        self.active = 0
        self.most_active = 0

    def setup(self) -> None:
        self.steps.append(("setup", threading.current_thread()))
        self.on_setup()

    def tick(self) -> None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        self.steps.append(("tick", threading.current_thread()))
        try:
            self.on_tick(self.ticks)
        finally:
            self.active -= 1
            self.ticked.set()

    def teardown(self) -> None:
        self.steps.append(("teardown", threading.current_thread()))
        self.on_teardown()

    @property
    def ticks(self) -> int:
        return sum(step == "tick" for step, _ in self.steps)


@pytest.fixture
def crashes() -> Crashes:
    """The failure handler of the ``loop_config``."""
    return Crashes()


@pytest.fixture
def loop_config(config: Config, crashes: Crashes) -> Config:
    """A Config for backend ``pulse`` whose crashes go to ``crashes``."""
    return dataclasses.replace(config.for_backend("pulse"), failure_handler=crashes)


def wait_for(condition: Callable[[], bool], timeout: float = PROMPT) -> None:
    """Poll ``condition`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.002)


def test_first_tick_runs_at_once_then_every_period(loop_config: Config) -> None:
    """The loop ticks immediately on start and keeps ticking each period."""
    loop = Recorder(loop_config, period=0.01)

    loop.start()
    wait_for(lambda: loop.ticks >= 3)
    loop.stop()

    assert [step for step, _ in loop.steps][:4] == ["setup", "tick", "tick", "tick"]
    assert loop.steps[-1][0] == "teardown"


def test_stop_returns_promptly_in_the_middle_of_a_long_wait(
    loop_config: Config,
) -> None:
    """With a one-hour period, stop() wakes the wait instead of sitting it out."""
    loop = Recorder(loop_config, period=3600.0)
    loop.start()
    assert loop.ticked.wait(PROMPT)

    began = time.monotonic()
    loop.stop()

    assert time.monotonic() - began < PROMPT
    assert not loop.running
    assert loop.ticks == 1


def test_stop_lets_the_tick_in_progress_finish(loop_config: Config) -> None:
    """A stop() during a tick waits for it, and no further tick starts."""
    loop = Recorder(loop_config)
    inside, release = threading.Event(), threading.Event()

    def slow_tick(count: int) -> None:
        inside.set()
        release.wait(PROMPT)

    loop.on_tick = slow_tick
    loop.start()
    assert inside.wait(PROMPT)
    stopper = threading.Thread(target=loop.stop)
    stopper.start()
    wait_for(lambda: loop.stopping)
    assert loop.running

    release.set()
    stopper.join(PROMPT)

    assert not stopper.is_alive()
    assert [step for step, _ in loop.steps] == ["setup", "tick", "teardown"]


def test_ticks_never_overlap(loop_config: Config) -> None:
    """However short the period and however often start() is called, one at a time."""
    loop = Recorder(loop_config, period=0.001)

    for _ in range(3):
        loop.start()
    wait_for(lambda: loop.ticks >= 20)
    loop.stop()

    assert loop.most_active == 1
    assert len({thread for _, thread in loop.steps}) == 1


def test_setup_and_teardown_run_in_the_loop_thread(loop_config: Config) -> None:
    """Setup, every tick and teardown share one thread that is not the caller's."""
    loop = Recorder(loop_config, period=0.01)

    loop.start()
    wait_for(lambda: loop.ticks >= 2)
    loop.stop()

    threads = {thread for _, thread in loop.steps}
    assert len(threads) == 1
    (thread,) = threads
    assert thread is not threading.current_thread()
    assert thread.name == "bgservice-loop-pulse"
    assert thread.daemon


def test_start_twice_runs_one_loop(loop_config: Config) -> None:
    """A second start() adds no thread."""
    loop = Recorder(loop_config)

    loop.start()
    loop.start()
    assert _loop_threads() == 1
    loop.stop()

    assert _loop_threads() == 0


def _loop_threads() -> int:
    return sum(t.name == "bgservice-loop-pulse" for t in threading.enumerate())


def test_stop_before_start_is_harmless_and_start_then_does_nothing(
    loop_config: Config,
) -> None:
    """stop() on a loop never started returns, and a later start() runs nothing."""
    loop = Recorder(loop_config)

    loop.stop()
    loop.start()

    assert not loop.running
    assert loop.steps == []


def test_stop_twice_is_harmless(loop_config: Config) -> None:
    """A second stop() returns at once and runs teardown no second time."""
    loop = Recorder(loop_config)
    loop.start()
    assert loop.ticked.wait(PROMPT)

    loop.stop()
    loop.stop()

    assert [step for step, _ in loop.steps] == ["setup", "tick", "teardown"]


def test_crash_in_a_tick_is_reported_to_the_chassis_once(
    loop_config: Config, crashes: Crashes
) -> None:
    """A tick that raises ends the loop and reaches the failure handler once."""
    loop = Recorder(loop_config, period=0.001)
    error = RuntimeError("the queue is gone")

    def failing(count: int) -> None:
        if count == 3:
            raise error

    loop.on_tick = failing
    loop.start()
    assert crashes.arrived.wait(PROMPT)
    wait_for(lambda: not loop.running)
    loop.stop()

    assert crashes.reported == [("pulse", error)]
    assert loop.ticks == 3
    assert loop.steps[-1][0] == "teardown"


def test_crash_without_a_handler_is_logged_with_its_traceback(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """With no chassis handler the crash is logged as an error, not dropped."""
    loop = Recorder(config.for_backend("pulse"))

    def divide(count: int) -> None:
        print(count / 0)

    loop.on_tick = divide

    loop.start()
    wait_for(lambda: not loop.running)
    loop.stop()

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["service 'pulse' crashed while running"]
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], ZeroDivisionError)


def test_system_exit_in_a_tick_is_reported_not_swallowed(
    loop_config: Config, crashes: Crashes
) -> None:
    """threading drops a SystemExit silently; the loop reports it as a crash."""
    loop = Recorder(loop_config)

    def leave(count: int) -> None:
        raise SystemExit(2)

    loop.on_tick = leave
    loop.start()

    assert crashes.arrived.wait(PROMPT)
    (backend, error), *_ = crashes.reported
    assert backend == "pulse"
    assert isinstance(error, SystemExit)
    loop.stop()


def test_setup_failure_is_reported_and_no_tick_runs(
    loop_config: Config, crashes: Crashes
) -> None:
    """A setup() that raises is a crash; the loop ends before its first tick."""
    loop = Recorder(loop_config)
    error = ConnectionError("database refused")

    def refuse() -> None:
        raise error

    loop.on_setup = refuse
    loop.start()
    assert crashes.arrived.wait(PROMPT)
    loop.stop()

    assert crashes.reported == [("pulse", error)]
    assert [step for step, _ in loop.steps] == ["setup"]


def test_crash_while_stopping_is_raised_by_stop_and_not_reported(
    loop_config: Config, crashes: Crashes
) -> None:
    """A teardown that raises during stop() surfaces from stop(), once."""
    loop = Recorder(loop_config)
    error = OSError("could not flush the final beat")

    def fail() -> None:
        raise error

    loop.on_teardown = fail
    loop.start()
    assert loop.ticked.wait(PROMPT)

    with pytest.raises(ServiceCrashedError) as caught:
        loop.stop()
    loop.stop()

    assert str(caught.value) == "service 'pulse' crashed while running"
    assert caught.value.__cause__ is error
    assert crashes.reported == []


def test_a_second_failure_while_stopping_is_reported_not_dropped(
    loop_config: Config, crashes: Crashes
) -> None:
    """Tick and teardown both fail during stop(): one raised, the other reported."""
    loop = Recorder(loop_config)
    inside, release = threading.Event(), threading.Event()
    tick_error, teardown_error = RuntimeError("tick"), RuntimeError("teardown")

    def tick(count: int) -> None:
        inside.set()
        release.wait(PROMPT)
        raise tick_error

    def teardown() -> None:
        raise teardown_error

    loop.on_tick, loop.on_teardown = tick, teardown
    loop.start()
    assert inside.wait(PROMPT)
    raised: list[BaseException] = []

    def stop() -> None:
        try:
            loop.stop()
        except ServiceCrashedError as err:
            raised.append(err)

    stopper = threading.Thread(target=stop)
    stopper.start()
    wait_for(lambda: loop.stopping)
    release.set()
    stopper.join(PROMPT)

    assert [err.__cause__ for err in raised] == [tick_error]
    assert crashes.reported == [("pulse", teardown_error)]


def test_crash_after_the_loop_stops_itself_is_still_reported(
    loop_config: Config, crashes: Crashes
) -> None:
    """A tick that calls stop() and then raises: no stop() will raise it, so report."""
    loop = Recorder(loop_config)
    error = RuntimeError("gave up")

    def give_up(count: int) -> None:
        loop.stop()
        raise error

    loop.on_tick = give_up
    loop.start()

    assert crashes.arrived.wait(PROMPT)
    assert crashes.reported == [("pulse", error)]
    loop.stop()


@pytest.mark.parametrize(
    ("period", "shown"),
    [
        (0, "0"),
        (-1.5, "-1.5"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (True, "True"),
        ("5", "'5'"),
    ],
)
def test_period_must_be_a_positive_finite_number(
    loop_config: Config, period: object, shown: str
) -> None:
    """A bad period is refused at construction, quoting the value."""
    with pytest.raises(ValueError, match="period") as caught:
        Recorder(loop_config, period=period)  # type: ignore[arg-type]

    assert str(caught.value) == (
        f"period must be a positive number of seconds, not {shown}"
    )


def test_tick_must_be_implemented(loop_config: Config, crashes: Crashes) -> None:
    """A subclass without tick() crashes its loop with a message saying so."""

    class Forgetful(LoopService):
        pass

    loop = Forgetful(loop_config, period=1.0)
    loop.start()
    assert crashes.arrived.wait(PROMPT)
    loop.stop()

    ((_, error),) = crashes.reported
    assert str(error) == "Forgetful must implement tick()"
