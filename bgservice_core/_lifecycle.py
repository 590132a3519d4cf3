"""Running services: start in order, watch for crashes, drain under one deadline.

:class:`ServiceRunner` is what ``bgservice run`` uses, and what a chassis embeds
to get the same guarantees:

- services start in the listed order; when one fails (it raises, or does not
  return within the start timeout) the ones already started are stopped again in
  reverse order and the failure names the backend;
- a crash reported by a running service is logged with its traceback, and by
  default asks the chassis to shut down so that its supervisor restarts it;
- the drain stops every started service concurrently, all sharing one deadline,
  and reports which stopped, which raised and which are still draining;
- a service is never stopped twice, nor while its ``start()`` is running.

Each ``start()`` and ``stop()`` call runs in a daemon thread of its own, so that
one that hangs can be named and abandoned instead of hanging the chassis.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from typing import NoReturn

from bgservice_core._contract import Service
from bgservice_core._drain_report import CrashPolicy, DrainReport, names_or_none
from bgservice_core._errors import ExitCode, ServiceStartError
from bgservice_core._service_call import (
    MAX_TIMEOUT,
    POLL_SECONDS,
    ServiceCall,
    check_seconds,
    wait_slice,
)

logger = logging.getLogger(__name__)

# Imported by name from here by the CLI and the package's public namespace.
__all__ = [
    "MAX_TIMEOUT",
    "CrashPolicy",
    "DrainReport",
    "ServiceRunner",
    "check_seconds",
]

_SLOW_START_HINT = (
    "; start() should return at once and leave the work to a background thread"
)


class ServiceRunner:
    """Starts services, watches them while they run, and drains them.

    :param logger: where lifecycle lines go; defaults to this module's logger.
    :param start_timeout: seconds a ``start()`` may take before it fails.
    :param slow_start: seconds after which a successful ``start()`` is logged as
        a warning, since it should return at once.
    :raises TypeError: a timeout is not a number (a bool is not one either).
    :raises ValueError: a timeout is not finite, or not in (0, MAX_TIMEOUT].
    :param crash_policy: what a crash given to :meth:`report_failure` does.
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
        self.start_timeout = check_seconds("start_timeout", start_timeout)
        self.slow_start = check_seconds("slow_start", slow_start)
        self.crash_policy = crash_policy

        self._lock = threading.Lock()
        self._services: dict[str, Service] = {}
        # Services whose start() was called and is not known to have raised.
        self._started: list[str] = []
        self._starts: dict[str, ServiceCall] = {}
        self._stops: dict[str, ServiceCall] = {}
        self._crashes: dict[str, BaseException] = {}
        self._stopped_order: list[str] = []
        # Starts that returned, and starts already counted as failed for taking
        # too long: each start is decided once, under the lock.
        self._returned: set[str] = set()
        self._timed_out: set[str] = set()
        self._drain_begun = False
        # A plain attribute, not an Event: request_shutdown runs inside signal
        # handlers, where taking a lock the interrupted code holds would deadlock.
        self._shutdown_requested = False

    # -- shutdown requests -------------------------------------------------

    @property
    def shutdown_requested(self) -> bool:
        """Whether a signal, a crash or a drain asked the chassis to stop."""
        return self._shutdown_requested

    @property
    def drain_begun(self) -> bool:
        """Whether :meth:`drain` has been called."""
        return self._drain_begun

    def request_shutdown(self) -> None:
        """Ask :meth:`start` to stop early and :meth:`wait` to return.

        Safe to call from a signal handler and from any thread.
        """
        self._shutdown_requested = True

    def wait(self) -> None:
        """Block until :meth:`request_shutdown` is called."""
        while not self._shutdown_requested:
            time.sleep(POLL_SECONDS)

    def report_failure(self, backend: str, error: BaseException) -> None:
        """Record that ``backend``'s loop died; pass this as a Config's handler."""
        with self._lock:
            # One exception reported twice by a service gets one log line.
            if any(known is error for known in self._crashes.values()):
                return
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

        A shutdown requested meanwhile stops the sequence, even in the middle
        of a slow ``start()``: what has started, or is starting, is left for
        :meth:`drain`, which stops a starting service once its ``start()``
        returns.

        :raises ServiceStartError: a ``start()`` raised or timed out; the
            services started before it have been stopped again.
        """
        for name, service in services.items():
            if self._shutdown_requested:
                self.logger.warning(
                    "shutdown requested during startup; not starting %s",
                    names_or_none(n for n in services if n not in self._services),
                )
                return
            self._start_one(name, service)

    def _start_one(self, name: str, service: Service) -> None:
        with self._lock:
            if name in self._services:
                raise ValueError(f"service {name!r} was already given to this runner")
            if self._shutdown_requested:
                return  # a drain began since start() last looked
            self._services[name] = service
            # Counted as started before start() returns, so that a drain
            # requested meanwhile stops it too, once start() has returned.
            self._started.append(name)
            self.logger.debug("starting service %r", name)
            call = ServiceCall("start", name, service.start, self._start_finished)
            self._starts[name] = call

        if not self._wait_for_start(call):
            return
        if call.error is not None:
            with self._lock:
                # A start that raised cleans up after itself: nothing to stop.
                self._started.remove(name)
            self._fail_start(name, _raised("start()", call), call.error)

    def _wait_for_start(self, call: ServiceCall) -> bool:
        """Wait for a ``start()``; False if a shutdown request cut it short."""
        deadline = time.monotonic() + self.start_timeout
        while not call.wait(wait_slice(deadline)):
            if time.monotonic() >= deadline and self._count_as_timed_out(call.name):
                timeout = self.start_timeout
                reason = f"start() did not return within {timeout:g}s"
                self._fail_start(call.name, reason)
            if self._shutdown_requested:
                self.logger.warning(
                    "shutdown requested while service %r was starting; it is "
                    "stopped once its start() returns",
                    call.name,
                )
                return False
        return True

    def _count_as_timed_out(self, name: str) -> bool:
        """Count a start past its deadline as failed, unless it just returned."""
        with self._lock:
            if name in self._returned:
                return False
            self._timed_out.add(name)
            return True

    def _start_finished(self, call: ServiceCall) -> None:
        """Log a start as it returns, in its own thread, even a late one."""
        with self._lock:
            self._returned.add(call.name)
            late = call.name in self._timed_out
        if late and call.error is None:
            self.logger.warning(
                "service %r returned after the start timeout, %.3fs; counted as failed",
                call.name,
                call.duration,
            )
            return
        if call.error is not None:
            return  # raised by whoever waits for it, or reported by its stop
        slow = call.duration >= self.slow_start
        self.logger.log(
            logging.WARNING if slow else logging.INFO,
            "service %r started in %.3fs%s",
            call.name,
            call.duration,
            _SLOW_START_HINT if slow else "",
        )

    def _fail_start(
        self, failed: str, reason: str, cause: BaseException | None = None
    ) -> NoReturn:
        """Stop the services started before ``failed``, newest first; raise."""
        deadline = time.monotonic() + self.start_timeout
        with self._lock:
            still_starting = failed in self._started
            newest_first = [n for n in reversed(self._started) if n != failed]
        if still_starting:
            # Not waited for: it is stopped if its start() ever returns.
            self._begin_stop(failed)

        for name in newest_first:
            call = self._begin_stop(name)
            if not call.wait(deadline - time.monotonic()):
                self.logger.error(
                    "service %r did not stop within %gs while rolling back; "
                    "abandoning it",
                    name,
                    self.start_timeout,
                )
        raise ServiceStartError(failed, reason, newest_first) from cause

    # -- drain --------------------------------------------------------------

    def drain(self, timeout: float) -> DrainReport:
        """Stop every started service concurrently, all within ``timeout`` seconds.

        Also requests a shutdown, so that a :meth:`start` still running starts
        nothing more. Calling it again waits again for the stops still running;
        no service is stopped twice.

        :raises TypeError: ``timeout`` is not a number.
        :raises ValueError: ``timeout`` is not finite, or not in (0, MAX_TIMEOUT].
        """
        deadline = time.monotonic() + check_seconds("timeout", timeout)
        with self._lock:
            self._shutdown_requested = True
            self._drain_begun = True
            newest_first = list(reversed(self._started))
        if newest_first:
            self.logger.info(
                "draining %d service(s) within %gs: %s",
                len(newest_first),
                timeout,
                names_or_none(newest_first),
            )

        calls = [self._begin_stop(name) for name in newest_first]
        for call in calls:
            call.wait(deadline - time.monotonic())

        report = self.report()
        clean = report.exit_code is ExitCode.OK
        level = logging.INFO if clean else logging.ERROR
        self.logger.log(level, "%s", report.summary())
        return report

    def still_draining(self) -> list[str]:
        """Return the services whose ``stop()`` is running now.

        Takes no lock, so that a signal handler may call it: the handler runs in
        the main thread, which may hold the lock at that moment.
        """
        finished = set(self._stopped_order.copy())
        return [name for name in self._stops.copy() if name not in finished]

    def never_stopped(self) -> list[str]:
        """Return the started services whose ``stop()`` has not been called.

        Takes no lock, for the same reason as :meth:`still_draining`.
        """
        stopping = set(self._stops.copy())
        return [name for name in self._started.copy() if name not in stopping]

    def report(self) -> DrainReport:
        """Describe the stops so far."""
        with self._lock:
            calls = list(self._stops.values())
            crashed = dict(self._crashes)
            stopped_order = list(self._stopped_order)
        # The finishing order, not call.done, says what finished: a stop that
        # has just returned is recorded there before its thread ends.
        finished = set(stopped_order)
        failed = {
            c.name: c.error for c in calls if c.name in finished and c.error is not None
        }
        return DrainReport(
            stopped=tuple(n for n in stopped_order if n not in failed),
            failed=failed,
            still_draining=tuple(c.name for c in calls if c.name not in finished),
            crashed=crashed,
            crash_policy=self.crash_policy,
        )

    def _begin_stop(self, name: str) -> ServiceCall:
        """Start stopping ``name`` unless that has begun already; return the stop."""
        with self._lock:
            if name in self._stops:
                return self._stops[name]
            self.logger.debug("stopping service %r", name)
            call = ServiceCall(
                "stop",
                name,
                functools.partial(self._stop_once_started, name),
                on_done=self._stop_finished,
            )
            self._stops[name] = call
            return call

    def _stop_once_started(self, name: str) -> None:
        """Call ``stop()`` once ``start()`` has returned, never alongside it.

        Runs in the stop's own thread, so a start that never returns makes this
        stop one that never finishes, which the drain deadline then names.
        """
        start = self._starts[name]
        start.wait(None)
        if start.error is not None:
            # Never started, so nothing to stop; but the drain waited for this
            # start, which nobody else may still be waiting for: report it.
            reason = _raised("start()", start)
            raise ServiceStartError(name, reason, ()) from start.error
        self._services[name].stop()

    def _stop_finished(self, call: ServiceCall) -> None:
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


def _raised(method: str, call: ServiceCall) -> str:
    kind = type(call.error).__name__
    return f"{method} raised {kind} after {call.duration:.3f}s: {call.error}"
