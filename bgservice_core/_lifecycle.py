"""Running services: start in order, watch for crashes, drain under one deadline.

:class:`ServiceRunner` is what ``bgservice run`` uses, and what a chassis embeds
to get the same guarantees:

- services start in the listed order; when one fails (it raises, or does not
  return within the start timeout) the ones already started are stopped again in
  reverse order and the failure names the backend;
- a crash reported by a running service is logged with its traceback, and by
  default asks the chassis to shut down so that its supervisor restarts it;
- the drain stops every started service concurrently, all sharing one deadline,
  and reports which stopped, which raised and which are still draining.

Each ``start()`` and ``stop()`` call runs in a daemon thread of its own, so that
one that hangs can be named and abandoned instead of hanging the chassis.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from bgservice_core._contract import Service
from bgservice_core._errors import ExitCode, ServiceStartError

logger = logging.getLogger(__name__)

#: How often a waiting loop looks for a shutdown request; see request_shutdown.
_POLL_SECONDS = 0.05


class CrashPolicy(enum.Enum):
    """What the runner does when a running service reports a crash."""

    #: Log the crash and keep the other services running.
    REPORT = "report"
    #: Log the crash and request a shutdown, so the supervisor restarts the process.
    SHUTDOWN = "shutdown"


@dataclasses.dataclass(frozen=True)
class DrainReport:
    """The outcome of :meth:`ServiceRunner.drain`.

    :param stopped: services whose ``stop()`` returned, in the order they did.
    :param failed: services whose ``stop()`` raised, with the exception.
    :param still_draining: services whose ``stop()`` had not returned in time.
    :param crashed: services that reported a crash while running.
    """

    stopped: tuple[str, ...] = ()
    failed: Mapping[str, BaseException] = dataclasses.field(default_factory=dict)
    still_draining: tuple[str, ...] = ()
    crashed: Mapping[str, BaseException] = dataclasses.field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """The exit code that ``bgservice run`` gives for this outcome."""
        if self.still_draining:
            return ExitCode.DRAIN_TIMEOUT
        if self.failed:
            return ExitCode.DRAIN_ERROR
        if self.crashed:
            return ExitCode.SERVICE_CRASHED
        return ExitCode.OK

    def summary(self) -> str:
        """Describe the outcome in one line."""
        parts = [f"stopped {len(self.stopped)}: {_names(self.stopped)}"]
        parts.append(f"failed {len(self.failed)}: {_names(self.failed)}")
        parts.append(
            f"still draining {len(self.still_draining)}: {_names(self.still_draining)}"
        )
        if self.crashed:
            parts.append(f"crashed while running: {_names(self.crashed)}")
        return "drain finished; " + "; ".join(parts)


class _Call:
    """One ``start()`` or ``stop()`` call, run in a daemon thread of its own."""

    def __init__(
        self,
        verb: str,
        name: str,
        method: Callable[[], object],
        on_done: Callable[[_Call], None] | None = None,
    ) -> None:
        self.name = name
        self.error: BaseException | None = None
        self.duration = 0.0
        self._method = method
        self._on_done = on_done
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"bgservice-{verb}-{name}", daemon=True
        )
        self._started_at = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        try:
            self._method()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            self.error = err
        finally:
            self.duration = time.monotonic() - self._started_at
            if self._on_done is not None:
                self._on_done(self)
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def elapsed(self) -> float:
        return self.duration if self.done else time.monotonic() - self._started_at

    def wait(self, timeout: float) -> bool:
        return self._done.wait(max(0.0, timeout))


class ServiceRunner:
    """Starts services, watches them while they run, and drains them.

    :param logger: where lifecycle lines go; defaults to this module's logger.
    :param start_timeout: seconds a ``start()`` may take before it counts as
        failed.
    :param slow_start: seconds after which a successful ``start()`` is logged as
        a warning, since it should return at once.
    :param crash_policy: what a crash reported through :meth:`report_failure`
        does.
    """

    def __init__(
        self,
        *,
        logger: logging.Logger | None = None,
        start_timeout: float = 30.0,
        slow_start: float = 1.0,
        crash_policy: CrashPolicy = CrashPolicy.SHUTDOWN,
    ) -> None:
        self.logger = logger or logging.getLogger(__name__)
        self.start_timeout = start_timeout
        self.slow_start = slow_start
        self.crash_policy = crash_policy

        self._lock = threading.Lock()
        self._services: dict[str, Service] = {}
        self._started: list[str] = []
        self._stops: dict[str, _Call] = {}
        self._crashes: dict[str, BaseException] = {}
        self._stopped_order: list[str] = []
        # A plain attribute, not an Event: request_shutdown runs inside signal
        # handlers, where taking a lock the interrupted code holds would deadlock.
        self._shutdown_requested = False

    # -- shutdown requests -------------------------------------------------

    @property
    def shutdown_requested(self) -> bool:
        """Whether a signal handler or a crash asked the chassis to stop."""
        return self._shutdown_requested

    def request_shutdown(self) -> None:
        """Ask :meth:`start` to stop early and :meth:`wait` to return.

        Safe to call from a signal handler and from any thread.
        """
        self._shutdown_requested = True

    def wait(self) -> None:
        """Block until :meth:`request_shutdown` is called."""
        while not self._shutdown_requested:
            time.sleep(_POLL_SECONDS)

    def report_failure(self, backend: str, error: BaseException) -> None:
        """Record that ``backend``'s loop died; pass this as a Config's handler."""
        with self._lock:
            self._crashes.setdefault(backend, error)
        self.logger.error(
            "service %r crashed while running (crash policy: %s)",
            backend,
            self.crash_policy.value,
            exc_info=(type(error), error, error.__traceback__),
        )
        if self.crash_policy is CrashPolicy.SHUTDOWN:
            self.request_shutdown()

    # -- start --------------------------------------------------------------

    def start(self, services: Mapping[str, Service]) -> None:
        """Start ``services`` in order, rolling back if one fails.

        A shutdown requested meanwhile stops the sequence: what has started is
        left for :meth:`drain`.

        :raises ServiceStartError: a ``start()`` raised or timed out; the
            services started before it have been stopped again.
        """
        for name, service in services.items():
            if self._shutdown_requested:
                self.logger.warning(
                    "shutdown requested during startup; not starting %s",
                    _names(n for n in services if n not in self._services),
                )
                return
            self._start_one(name, service)

    def _start_one(self, name: str, service: Service) -> None:
        with self._lock:
            if name in self._services:
                raise ValueError(f"service {name!r} was already given to this runner")
            self._services[name] = service
            # Counted as started before start() returns, so that a drain
            # requested meanwhile stops it too.
            self._started.append(name)

        self.logger.debug("starting service %r", name)
        call = _Call("start", name, service.start)
        deadline = time.monotonic() + self.start_timeout
        while not call.wait(min(_POLL_SECONDS, deadline - time.monotonic())):
            if self._shutdown_requested:
                self.logger.warning(
                    "shutdown requested while service %r was starting", name
                )
                return
            if time.monotonic() >= deadline:
                self._fail_start(
                    name, f"start() did not return within {self.start_timeout:g}s"
                )

        if call.error is not None:
            with self._lock:
                self._started.remove(name)  # a start that raised cleans up itself
            self._fail_start(
                name,
                f"start() raised {type(call.error).__name__}: {call.error}",
                call.error,
            )
        self._log_started(name, call.duration)

    def _log_started(self, name: str, duration: float) -> None:
        if duration >= self.slow_start:
            self.logger.warning(
                "service %r started in %.3fs; start() should return at once and "
                "leave the work to a background thread",
                name,
                duration,
            )
        else:
            self.logger.info("service %r started in %.3fs", name, duration)

    def _fail_start(
        self, name: str, reason: str, cause: BaseException | None = None
    ) -> None:
        rolled_back = self._roll_back(self.start_timeout)
        raise ServiceStartError(name, reason, rolled_back) from cause

    def _roll_back(self, timeout: float) -> list[str]:
        """Stop every started service one by one, newest first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            newest_first = list(reversed(self._started))
        for name in newest_first:
            call = self._begin_stop(name)
            if call is not None:
                call.wait(deadline - time.monotonic())
        return newest_first

    # -- drain --------------------------------------------------------------

    def drain(self, timeout: float) -> DrainReport:
        """Stop every started service concurrently, all within ``timeout`` seconds.

        Calling it again waits again for the stops still running; no service is
        stopped twice.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            newest_first = list(reversed(self._started))
        if newest_first:
            self.logger.info(
                "draining %d service(s) within %gs: %s",
                len(newest_first),
                timeout,
                _names(newest_first),
            )

        calls = [self._begin_stop(name) or self._stops[name] for name in newest_first]
        for call in calls:
            call.wait(deadline - time.monotonic())

        report = self.report()
        log = self.logger.info if report.exit_code is ExitCode.OK else self.logger.error
        log("%s", report.summary())
        return report

    def still_draining(self) -> list[str]:
        """Return the services whose ``stop()`` is running now.

        Takes no lock, so that a signal handler may call it: the handler runs in
        the main thread, which may hold the lock at that moment.
        """
        finished = set(self._stopped_order.copy())
        return [name for name in self._stops.copy() if name not in finished]

    def report(self) -> DrainReport:
        """Describe the stops so far."""
        with self._lock:
            calls = list(self._stops.values())
            crashed = dict(self._crashes)
            stopped_order = list(self._stopped_order)
        # The finishing order, not call.done, says what finished: a stop that
        # has just returned is recorded there before its event is set.
        finished = set(stopped_order)
        failed = {
            c.name: c.error for c in calls if c.name in finished and c.error is not None
        }
        return DrainReport(
            stopped=tuple(n for n in stopped_order if n not in failed),
            failed=failed,
            still_draining=tuple(c.name for c in calls if c.name not in finished),
            crashed=crashed,
        )

    def _begin_stop(self, name: str) -> _Call | None:
        """Start stopping ``name`` unless that has begun already."""
        with self._lock:
            if name in self._stops:
                return None
            service = self._services[name]
            call = _Call("stop", name, service.stop, on_done=self._stop_finished)
            self._stops[name] = call
        self.logger.debug("stopping service %r", name)
        return call

    def _stop_finished(self, call: _Call) -> None:
        """Record and log a stop as it finishes, in the stopping thread."""
        with self._lock:
            self._stopped_order.append(call.name)
        if call.error is None:
            self.logger.info("service %r stopped in %.3fs", call.name, call.duration)
            return
        self.logger.error(
            "service %r failed to stop after %.3fs",
            call.name,
            call.duration,
            exc_info=(type(call.error), call.error, call.error.__traceback__),
        )


def _names(names: Iterable[str]) -> str:
    listed = ", ".join(names)
    return listed or "none"
