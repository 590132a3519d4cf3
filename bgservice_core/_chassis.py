"""The reference chassis behind ``bgservice run``: signals, open, start, wait, drain.

The lifecycle guarantees live in :class:`~bgservice_core.ServiceRunner`; this
module adds what only a whole process can do: signal handling and exit codes.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn, TypeAlias

from bgservice_core._contract import Config, Gate, Service
from bgservice_core._errors import BGServiceError, ExitCode
from bgservice_core._lifecycle import CrashPolicy, ServiceRunner
from bgservice_core._opening import open_by_name

logger = logging.getLogger("bgservice.chassis")

_Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | None


def run_chassis(
    *,
    names: str,
    node_id: str,
    store: Gate,
    drain_timeout: float,
    start_timeout: float,
    crash_policy: str,
) -> ExitCode:
    """Run the services named in ``names`` until a signal; return the exit code."""
    runner = ServiceRunner(
        logger=logger,
        start_timeout=start_timeout,
        crash_policy=CrashPolicy(crash_policy),
    )
    config = Config(
        logger=logging.getLogger("bgservice.service"),
        gate=store,
        node_id=node_id,
        failure_handler=runner.report_failure,
    )
    handlers = _SignalHandlers(runner)
    handlers.install()
    try:
        return _open_and_run(runner, handlers, config, names, drain_timeout)
    finally:
        handlers.restore()


def _open_and_run(
    runner: ServiceRunner,
    handlers: _SignalHandlers,
    config: Config,
    names: str,
    drain_timeout: float,
) -> ExitCode:
    try:
        services = _open_interruptibly(handlers, names, config)
    except BGServiceError as err:
        logger.error("%s", err)
        return err.exit_code
    except _OpeningAbandoned:
        logger.info(
            "start abandoned while the backends were being opened; "
            "no service was started"
        )
        return ExitCode.OK
    handlers.reinstall_if_replaced()
    if not services:
        logger.warning(
            "no background services named; pass names (bgservice run heartbeat) or "
            "set BGSERVICE_BACKGROUND_SERVICES; see bgservice list"
        )
        return ExitCode.OK

    try:
        runner.start(services)
    except BGServiceError as err:
        logger.error("%s", err)
        return err.exit_code

    if not runner.shutdown_requested:
        logger.info(
            "running %d service(s) as node %r; SIGINT or SIGTERM drains them",
            len(services),
            config.node_id,
        )
        runner.wait()
    return runner.drain(drain_timeout).exit_code


def _open_interruptibly(
    handlers: _SignalHandlers, names: str, config: Config
) -> dict[str, Service]:
    """Open the backends; a shutdown signal meanwhile raises _OpeningAbandoned."""
    try:
        handlers.opening = True
        if handlers.runner.shutdown_requested:
            raise _OpeningAbandoned
        return open_by_name(names, config)
    finally:
        handlers.opening = False


class _OpeningAbandoned(BaseException):
    """Raised in the main thread by a shutdown signal while backends are opened."""

    # A BaseException: opening turns every Exception a backend's import or
    # constructor raises into a load error, and this one must get through.


class _SignalHandlers:
    """The chassis' handlers for SIGINT, SIGTERM and SIGHUP, and their state."""

    def __init__(self, runner: ServiceRunner) -> None:
        self.runner = runner
        #: While True, backends are imported and built in the main thread, where
        #: a hung import would never see a shutdown request: the signal raises.
        self.opening = False
        # Counted, not read off runner.shutdown_requested: a drain that a crash
        # began must not turn the operator's first Ctrl-C into a forced exit.
        self._received = 0
        self._repeat_logged = False
        self._installed: dict[int, _Handler] = {
            signal.SIGINT: self.on_shutdown_signal,
            signal.SIGTERM: self.on_shutdown_signal,
            signal.SIGHUP: self.on_hangup,
        }
        self._previous: dict[int, _Handler] = {}

    def install(self) -> None:
        """Install the handlers, remembering the ones they replace."""
        for signum, handler in self._installed.items():
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)

    def restore(self) -> None:
        """Put back the handlers that :meth:`install` replaced."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def reinstall_if_replaced(self) -> None:
        """Reinstall a handler that a backend replaced while it was opened."""
        for signum, handler in self._installed.items():
            if signal.getsignal(signum) is handler:
                continue
            signal.signal(signum, handler)
            logger.warning(
                "the %s handler was replaced while the backends were being opened "
                "(by an import or a constructor); reinstalled the chassis' own, "
                "since a backend must not handle the chassis' signals",
                signal.Signals(signum).name,
            )

    def on_shutdown_signal(self, signum: int, frame: FrameType | None) -> None:
        """Request a shutdown; force the exit on a repeat once draining."""
        name = signal.Signals(signum).name
        self._received += 1
        if self._received == 1:
            self._shut_down(name)
        elif not self.runner.drain_begun:
            self._repeat_before_drain(name)
        else:
            self._force_exit(name)

    def _shut_down(self, name: str) -> None:
        already = " (already shutting down)" if self.runner.shutdown_requested else ""
        logger.info(
            "%s received%s; shutting down (send it again to exit at once)",
            name,
            already,
        )
        self.runner.request_shutdown()
        if self.opening:
            self.opening = False
            raise _OpeningAbandoned

    def _repeat_before_drain(self, name: str) -> None:
        # GNU timeout signals the process and then its group, milliseconds
        # apart: a repeat before the drain must not skip the drain.
        if self._repeat_logged:
            return
        self._repeat_logged = True
        logger.info(
            "%s received again before the drain began; already shutting down "
            "(a signal during the drain exits at once)",
            name,
        )

    def _force_exit(self, name: str) -> NoReturn:
        never = self.runner.never_stopped()
        logger.critical(
            "second %s received; exiting now without waiting; still draining: %s%s",
            name,
            ", ".join(self.runner.still_draining()) or "none",
            f"; never stopped: {', '.join(never)}" if never else "",
        )
        logging.shutdown()
        os._exit(ExitCode.FORCED_EXIT)

    def on_hangup(self, signum: int, frame: FrameType | None) -> None:
        """Log that SIGHUP changes nothing."""
        logger.warning(
            "SIGHUP received and ignored: bgservice run does not reload its "
            "configuration; restart it to apply changes"
        )
