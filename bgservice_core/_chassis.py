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
from typing import Any, TypeAlias

from bgservice_core._contract import Config, Gate
from bgservice_core._errors import BGServiceError, ExitCode
from bgservice_core._lifecycle import CrashPolicy, ServiceRunner
from bgservice_core._opening import open_by_name

logger = logging.getLogger("bgservice.chassis")

_SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_HANDLED_SIGNALS = (*_SHUTDOWN_SIGNALS, signal.SIGHUP)

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
    previous = _install_signal_handlers(runner)
    try:
        return _open_and_run(runner, config, names, drain_timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _open_and_run(
    runner: ServiceRunner, config: Config, names: str, drain_timeout: float
) -> ExitCode:
    try:
        services = open_by_name(names, config)
    except BGServiceError as err:
        logger.error("%s", err)
        return err.exit_code
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


def _install_signal_handlers(runner: ServiceRunner) -> dict[int, _Handler]:
    """Install the chassis' handlers; return the ones they replace."""
    # Counted, not read off runner.shutdown_requested: a drain that a crash
    # began must not turn the operator's first Ctrl-C into a forced exit.
    received: list[str] = []

    def on_shutdown_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        received.append(name)
        if len(received) == 1:
            draining = runner.shutdown_requested
            already = " (already shutting down)" if draining else ""
            logger.info(
                "%s received%s; shutting down (send it again to exit at once)",
                name,
                already,
            )
            runner.request_shutdown()
            return
        still = ", ".join(runner.still_draining()) or "none"
        logger.critical(
            "second %s received; exiting now without waiting; still draining: %s",
            name,
            still,
        )
        logging.shutdown()
        os._exit(ExitCode.FORCED_EXIT)

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        logger.warning(
            "SIGHUP received and ignored: bgservice run does not reload its "
            "configuration; restart it to apply changes"
        )

    previous: dict[int, _Handler] = {
        signum: signal.getsignal(signum) for signum in _HANDLED_SIGNALS
    }
    for signum in _SHUTDOWN_SIGNALS:
        signal.signal(signum, on_shutdown_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    return previous
