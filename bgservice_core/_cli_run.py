"""``bgservice run``: the reference chassis, until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from typing import Any, NoReturn

import click
from click.shell_completion import CompletionItem

from bgservice_core._cli_shared import (
    UnusableDatabase,
    db_option,
    default_node_id,
    open_store,
)
from bgservice_core._errors import BGServiceError, ExitCode

#: The environment variable ``bgservice run`` reads its backend list from.
SERVICES_VARIABLE = "BGSERVICE_BACKGROUND_SERVICES"


def _complete_backend_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Complete the name after the last comma from installed metadata only."""
    from bgservice_core._discovery import installed_entry_points

    done, comma, current = incomplete.rpartition(",")
    # Keep what was typed before the current name, spaces included.
    prefix = done + comma + current[: len(current) - len(current.lstrip())]
    chosen = {name.strip() for name in done.split(",")}
    try:
        installed = {entry_point.name for entry_point in installed_entry_points()}
    except BGServiceError:
        return []  # a completion cannot show the error: 'bgservice list' will
    return [
        CompletionItem(prefix + name)
        for name in sorted(installed)
        if name.startswith(current.strip()) and name not in chosen
    ]


class _Seconds(click.ParamType[float, Any]):
    """A timeout in seconds: finite, above 0 and at most one week."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from bgservice_core._lifecycle import MAX_TIMEOUT

        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        # A nan or infinite timeout would silently disable the deadline.
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT):
            self.fail(
                f"{value!r} is not a usable number of seconds: it must be finite, "
                f"greater than 0 and at most {MAX_TIMEOUT:g} (one week)",
                param,
                ctx,
            )
        return seconds


def _checked_node_id(value: str | None) -> str | None:
    # Rows and log lines are attributed to this name: a blank one says nothing.
    if value is not None and not value.strip():
        raise click.BadParameter(
            f"{value!r} is blank; give this node a stable name such as "
            "gw-1.example.net, or leave the option out to use the host's FQDN"
        )
    return value.strip() if value is not None else None


@click.command("run")
@click.argument(
    "names",
    required=False,
    envvar=SERVICES_VARIABLE,
    default="",
    shell_complete=_complete_backend_names,
)
@click.option(
    "--node-id",
    default=None,
    callback=lambda ctx, param, value: _checked_node_id(value),
    help="This node's stable identity. Default: the host's fully qualified name.",
)
@db_option
@click.option(
    "--drain-timeout",
    type=_Seconds(),
    default=25.0,
    show_default=True,
    help="Seconds all services together get to stop after SIGINT or SIGTERM.",
)
@click.option(
    "--start-timeout",
    type=_Seconds(),
    default=10.0,
    show_default=True,
    help="Seconds one start() may take before the start counts as failed.",
)
@click.option(
    "--on-crash",
    type=click.Choice(["shutdown", "report"]),
    default="shutdown",
    show_default=True,
    help="When a running service crashes: drain and exit 8, or only log it.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
def run_command(
    names: str,
    node_id: str | None,
    db: str,
    drain_timeout: float,
    start_timeout: float,
    on_crash: str,
    log_level: str,
) -> None:
    """Run the named backends until SIGINT or SIGTERM, then drain them.

    NAMES is a comma-separated list such as "heartbeat,credit-gate"; without
    it, BGSERVICE_BACKGROUND_SERVICES is read. Empty entries and "nop" are
    ignored. A second SIGINT or SIGTERM while draining exits at once; one
    that arrives while the backends are being imported or built abandons
    the start, and exits 0. SIGHUP is ignored with a warning (nothing is
    reloaded).

    \b
    Exit codes:
      0  drained cleanly          5  a service failed to start
      1  internal error           6  a service did not stop in time
      2  usage error              7  a service's stop() raised
      3  unusable configuration   8  a service crashed while running
         (unknown, conflicting    9  forced exit by a second signal
         or repeated name, or        during the drain
         a --db that cannot be used)
      4  a backend failed to load or build its service

    \b
    Examples:
      bgservice run heartbeat
      BGSERVICE_BACKGROUND_SERVICES=heartbeat bgservice run --drain-timeout 10
    """
    from bgservice_core._chassis import run_chassis

    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # Backends that share the chassis database default to the same file.
    os.environ["BGSERVICE_DB"] = db
    code = run_chassis(
        names=names,
        node_id=node_id or default_node_id(),
        store=open_store(
            db,
            node_id or default_node_id(),
            listen=True,
            error=UnusableDatabase,
        ),
        drain_timeout=drain_timeout,
        start_timeout=start_timeout,
        crash_policy=on_crash,
    )
    _exit(code)


def _exit(code: ExitCode) -> NoReturn:
    # A service's non-daemon thread may still run: a stop() that hung, a start()
    # that timed out, or a leak. The interpreter would wait for it for ever.
    lingering = [
        thread.name
        for thread in threading.enumerate()
        if not thread.daemon and thread is not threading.main_thread()
    ]
    if lingering:
        logging.getLogger("bgservice.chassis").warning(
            "exiting without waiting for threads the services left running: %s",
            ", ".join(lingering),
        )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    if lingering or code is ExitCode.DRAIN_TIMEOUT:
        os._exit(code)
    sys.exit(code)
