"""The conformance check: does an installed backend keep the service contract?

It goes through the backend the way ``bgservice run`` does (installed metadata,
import, hook validation, construction) and then drives the service's lifecycle,
with a time bound on every call, so a hanging backend fails the check instead
of hanging the test run. :mod:`bgservice_core.testing` is its public face.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from bgservice_core._contract import Config, Service
from bgservice_core._discovery import BackendEntry, installed_entries
from bgservice_core._errors import (
    ENTRY_POINT_GROUP,
    BackendLoadError,
    ServiceConstructionError,
)
from bgservice_core._opening import build_service, load_constructor

#: Seconds ``start()`` may take: it should return at once, but machines get
#: busy.
DEFAULT_START_TIMEOUT = 5.0
#: Seconds ``stop()`` may take: long enough for a tick in progress to finish.
DEFAULT_DRAIN_TIMEOUT = 10.0
#: Seconds a started service runs before the check stops it.
DEFAULT_RUN_FOR = 0.2
#: Seconds a thread that ``stop()`` already ended may take to be reaped.
_THREAD_GRACE = 1.0

#: Names the threads the helpers call a service from; they are never leaks.
HELPER_THREAD_PREFIX = "bgservice-testing-"

#: The checks, by the name a report gives them.
ENTRY_POINT_CHECK = "entry point resolves"
HOOK_CHECK = "hook validates"
BUILD_CHECK = "builds with valid settings"
STOP_BEFORE_START_CHECK = "stop() before start() is harmless"
START_CHECK = "start() returns promptly"
CRASH_CHECK = "reports no crash while running"
STOP_CHECK = "stop() drains promptly"
STOP_TWICE_CHECK = "stop() twice is harmless"
THREAD_CHECK = "no thread survives the drain"

#: The checks of a built service, in the order they run.
_RUNNING_CHECKS = (
    START_CHECK,
    STOP_CHECK,
    STOP_TWICE_CHECK,
    CRASH_CHECK,
    THREAD_CHECK,
)


@dataclasses.dataclass(frozen=True)
class CallOutcome:
    """How a call made through :func:`bounded_call` ended."""

    returned: bool
    error: BaseException | None = None

    def describe(self) -> str:
        """Name the error's type and message."""
        return f"{type(self.error).__name__}: {self.error}"


def bounded_call(
    method: Callable[[], object], timeout: float, label: str
) -> CallOutcome:
    """Call ``method`` in a daemon thread and wait at most ``timeout`` seconds.

    A call that does not return in time is abandoned, still running: the test
    fails instead of hanging.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            method()
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            errors.append(err)

    thread = threading.Thread(
        target=run, name=f"{HELPER_THREAD_PREFIX}{label}", daemon=True
    )
    thread.start()
    thread.join(max(0.0, timeout))
    if thread.is_alive():
        return CallOutcome(returned=False)
    return CallOutcome(returned=True, error=errors[0] if errors else None)


@contextmanager
def patched_environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set environment variables (``None`` unsets one), then restore them."""
    saved = {variable: os.environ.get(variable) for variable in values}
    try:
        _apply(values)
        yield
    finally:
        _apply(saved)


def _apply(values: Mapping[str, str | None]) -> None:
    for variable, value in values.items():
        if value is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = value


class Status(enum.Enum):
    """The outcome of one check."""

    PASSED = "ok"
    FAILED = "FAILED"
    SKIPPED = "skipped"


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, with what was seen."""

    check: str
    status: Status
    detail: str = ""

    def describe(self) -> str:
        """Say the check, its outcome and the detail, in one line."""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.status.value:>7}  {self.check}{detail}"


@dataclasses.dataclass(frozen=True)
class ConformanceReport:
    """Every check run against one backend, in order."""

    backend: str
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        """Whether every check ran and passed."""
        return all(result.status is Status.PASSED for result in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [r for r in self.results if r.status is Status.FAILED]

    def describe(self) -> str:
        """List the checks and their outcomes, one a line."""
        verdict = "conforms" if self.passed else "does not conform"
        lines = [f"backend {self.backend!r} {verdict} to the service contract:"]
        lines.extend(result.describe() for result in self.results)
        return "\n".join(lines)


class ConformanceError(AssertionError):
    """A backend failed the conformance check; ``report`` says which checks.

    :param report: the outcome of every check.
    """

    def __init__(self, report: ConformanceReport) -> None:
        self.report = report
        super().__init__(report.describe())


def check_conformance(
    name: str,
    config: Config,
    *,
    bad_settings: Sequence[Mapping[str, str | None]] = (),
    environment: Mapping[str, str | None] | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    run_for: float = DEFAULT_RUN_FOR,
) -> ConformanceReport:
    """Run every check against backend ``name``; see the testing kit."""
    checker = _Checker(name, config, start_timeout, drain_timeout)
    with patched_environment(environment or {}):
        checker.run(bad_settings, run_for)

    report = ConformanceReport(name, tuple(checker.results))
    if not report.passed:
        raise ConformanceError(report)
    return report


class _Checker:
    """Runs the checks in order and records each outcome."""

    def __init__(
        self, name: str, config: Config, start_timeout: float, drain_timeout: float
    ) -> None:
        self.name = name
        self.start_timeout = start_timeout
        self.drain_timeout = drain_timeout
        self.results: list[CheckResult] = []

        self._crashes: list[BaseException] = []
        # Crashes are collected here, whatever the caller's handler does.
        self.config = dataclasses.replace(
            config, failure_handler=lambda _, error: self._crashes.append(error)
        )

    def record(self, check: str, problem: str | None, detail: str = "") -> bool:
        status = Status.PASSED if problem is None else Status.FAILED
        self.results.append(CheckResult(check, status, problem or detail))
        return problem is None

    def skip(self, *checks: str) -> None:
        for check in checks:
            self.results.append(
                CheckResult(check, Status.SKIPPED, "an earlier check failed")
            )

    def run(
        self, bad_settings: Sequence[Mapping[str, str | None]], run_for: float
    ) -> None:
        threads_before = set(threading.enumerate())
        constructor = self.load()
        if constructor is None:
            self.skip(*[_bad_settings_check(s) for s in bad_settings])
            self.skip(STOP_BEFORE_START_CHECK, BUILD_CHECK, *_RUNNING_CHECKS)
            return

        for settings in bad_settings:
            self.check_bad_settings(constructor, settings)
        self.check_stop_before_start(constructor)
        service = self.build(constructor)
        if service is None:
            self.skip(*_RUNNING_CHECKS)
            return

        self.check_lifecycle(service, run_for)
        self.check_threads(threads_before)

    def load(self) -> Callable[[Config], Service] | None:
        entries = list(installed_entries(self.name))
        if len(entries) != 1:
            self.record(ENTRY_POINT_CHECK, _entry_problem(self.name, entries))
            self.skip(HOOK_CHECK)
            return None

        entry = entries[0]
        try:
            entry.load()
        except (Exception, SystemExit) as err:  # noqa: BLE001 - the failure is the verdict
            self.record(
                ENTRY_POINT_CHECK, f"importing {entry.value!r} failed: {_text(err)}"
            )
            self.skip(HOOK_CHECK)
            return None
        self.record(ENTRY_POINT_CHECK, None, entry.describe())

        try:
            constructor = load_constructor(entry)
        except BackendLoadError as err:
            self.record(HOOK_CHECK, err.reason)
            return None
        self.record(HOOK_CHECK, None)
        return constructor

    def check_bad_settings(
        self,
        constructor: Callable[[Config], Service],
        settings: Mapping[str, str | None],
    ) -> None:
        check = _bad_settings_check(settings)
        with patched_environment(settings):
            try:
                service = build_service(self.name, constructor, self.config)
            except ServiceConstructionError as err:
                self.record(check, _unclear(err, settings), str(err.__cause__ or err))
                return

        bounded_call(service.stop, self.drain_timeout, f"stop-{self.name}")
        self.record(check, f"it built a service all the same; {_ADVICE}")

    def check_stop_before_start(self, constructor: Callable[[Config], Service]) -> None:
        try:
            service = build_service(self.name, constructor, self.config)
        except ServiceConstructionError as err:
            self.record(STOP_BEFORE_START_CHECK, str(err))
            return
        self.record(STOP_BEFORE_START_CHECK, self.stop_problem(service))

    def build(self, constructor: Callable[[Config], Service]) -> Service | None:
        try:
            service = build_service(self.name, constructor, self.config)
        except ServiceConstructionError as err:
            self.record(BUILD_CHECK, str(err))
            return None
        self.record(BUILD_CHECK, None, type(service).__name__)
        return service

    def check_lifecycle(self, service: Service, run_for: float) -> None:
        started = bounded_call(service.start, self.start_timeout, f"start-{self.name}")
        if not self.record(START_CHECK, _start_problem(started, self.start_timeout)):
            # Stopped anyway, so a service that half started does not linger.
            bounded_call(service.stop, self.drain_timeout, f"stop-{self.name}")
            self.skip(STOP_CHECK, STOP_TWICE_CHECK, CRASH_CHECK)
            return

        time.sleep(run_for)
        stop_problem = self.stop_problem(service)
        self.record(STOP_CHECK, stop_problem)
        if stop_problem is None:
            self.record(STOP_TWICE_CHECK, self.stop_problem(service))
        else:
            self.skip(STOP_TWICE_CHECK)
        self.record(CRASH_CHECK, _crash_problem(self._crashes))

    def stop_problem(self, service: Service) -> str | None:
        stopped = bounded_call(service.stop, self.drain_timeout, f"stop-{self.name}")
        if not stopped.returned:
            return f"stop() did not return within {self.drain_timeout:g}s"
        if stopped.error is not None:
            return f"stop() raised {stopped.describe()}"
        return None

    def check_threads(self, before: set[threading.Thread]) -> None:
        deadline = time.monotonic() + _THREAD_GRACE
        while (survivors := _new_threads(before)) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not survivors:
            self.record(THREAD_CHECK, None)
            return
        names = ", ".join(repr(thread.name) for thread in survivors)
        self.record(
            THREAD_CHECK,
            f"still running after stop() returned: {names}; stop() must end "
            "every thread the service started before it returns",
        )


_ADVICE = (
    "read and validate settings in bgservice_build_service and raise "
    "bgservice_core.SettingError for a bad value"
)


def _entry_problem(name: str, entries: Sequence[BackendEntry]) -> str:
    if not entries:
        return (
            f"no installed distribution advertises {name!r} in the entry-point group "
            f"{ENTRY_POINT_GROUP!r}; install the backend's distribution "
            "(pip install -e .) and check the name in its entry-point table"
        )
    claimants = "; ".join(entry.claimant() for entry in entries)
    return f"{len(entries)} distributions advertise {name!r}: {claimants}"


def _unclear(
    err: ServiceConstructionError, settings: Mapping[str, str | None]
) -> str | None:
    """Say why an error does not point at the bad setting, if it does not."""
    cause = err.__cause__
    message = str(cause or err)
    shown = _text(cause) if cause is not None else message
    named = [variable for variable in settings if variable in message]
    if not named:
        return f"the error does not name {', '.join(settings)}: {shown}"
    for variable in named:
        value = settings[variable]
        if value is None or value in message or repr(value) in message:
            return None
    return f"the error does not quote the bad value: {shown}"


def _start_problem(started: CallOutcome, timeout: float) -> str | None:
    if not started.returned:
        return (
            f"start() did not return within {timeout:g}s; start a thread and "
            "return, leaving the work to it"
        )
    if started.error is not None:
        return f"start() raised {started.describe()}"
    return None


def _crash_problem(crashes: Sequence[BaseException]) -> str | None:
    if not crashes:
        return None
    return f"it reported {_text(crashes[0])}"


def _new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread not in before and not thread.name.startswith(HELPER_THREAD_PREFIX)
    ]


def _bad_settings_check(settings: Mapping[str, str | None]) -> str:
    parts = [
        f"unset {variable}" if value is None else f"{variable}={value!r}"
        for variable, value in settings.items()
    ]
    return f"rejects {', '.join(parts) or 'no settings'}"


def _text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
