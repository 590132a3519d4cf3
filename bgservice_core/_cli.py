"""The ``bgservice`` command: list backends, manage tenants, run the chassis."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import click

from bgservice_core._errors import ENTRY_POINT_GROUP, BGServiceError, ExitCode
from bgservice_core._version import __version__

#: The environment variable ``bgservice run`` reads its backend list from.
SERVICES_VARIABLE = "BGSERVICE_BACKGROUND_SERVICES"
DEFAULT_DB = "bgservice.db"

_IDENTITY_COLUMNS = ["name", "distribution", "version"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="bgservice")
def main() -> None:
    """Run background services from installed backend distributions.

    \b
    Examples:
      bgservice list
      bgservice tenants add acme
      bgservice run heartbeat
    """


# -- list ------------------------------------------------------------------


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead.")
@click.option(
    "--check",
    is_flag=True,
    help="Import each backend in a process of its own and report whether it loads.",
)
def list_command(as_json: bool, check: bool) -> None:
    """List the installed backends, reading metadata only.

    A name offered by more than one distribution is flagged as a conflict;
    selecting it in ``bgservice run`` is an error until one is uninstalled.

    \b
    Examples:
      bgservice list
      bgservice list --json
      bgservice list --check
    """
    from bgservice_core._discovery import discover_backends

    rows = _backend_rows(discover_backends())
    if check:
        _report_checks(rows, as_json)
    elif as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        _print_table(rows, [*_IDENTITY_COLUMNS, "entry_point", "summary"])
    else:
        click.echo(f"no backends installed in entry-point group {ENTRY_POINT_GROUP!r}")


def _backend_rows(backends: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "distribution": entry.distribution,
            "version": entry.version,
            "entry_point": entry.value,
            "summary": entry.summary,
            "conflict": len(entries) > 1,
        }
        for name, entries in backends.items()
        for entry in entries
    ]


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from tabulate import tabulate

    table = [[_cell(row, column) for column in columns] for row in rows]
    headers = [column.replace("_", " ") for column in columns]
    click.echo(tabulate(table, headers=headers, tablefmt="simple"))
    if any(row.get("conflict") for row in rows):
        click.echo(
            "\nCONFLICT: more than one distribution offers this name; selecting it "
            "is an error until all but one are uninstalled.",
            err=True,
        )


def _cell(row: dict[str, Any], column: str) -> Any:
    if column == "name" and row.get("conflict"):
        return f"{row['name']} (CONFLICT)"
    return row[column]


def _report_checks(rows: list[dict[str, Any]], as_json: bool) -> None:
    # One process per backend: a backend that crashes the interpreter, or
    # leaves modules behind, cannot affect the verdict on another.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        outcomes = list(pool.map(_check_in_subprocess, [row["name"] for row in rows]))
    for row, outcome in zip(rows, outcomes, strict=True):
        row["status"] = outcome

    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        _print_table(rows, [*_IDENTITY_COLUMNS, "status"])
    else:
        click.echo(f"no backends installed in entry-point group {ENTRY_POINT_GROUP!r}")
    if any(row["status"] != "ok" for row in rows):
        sys.exit(ExitCode.LOAD_ERROR)


def _check_in_subprocess(name: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "bgservice_core._cli", "check-one", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode == 0:
        return "ok"
    lines = (completed.stdout + completed.stderr).strip().splitlines()
    return lines[-1] if lines else f"failed with exit code {completed.returncode}"


@main.command("check-one", hidden=True)
@click.argument("name")
def check_one(name: str) -> None:
    """Import and validate one backend; used by ``list --check``."""
    from bgservice_core._opening import load_constructor, resolve_backends

    try:
        load_constructor(resolve_backends([name])[0])
    except BGServiceError as err:
        click.echo(str(err).replace("\n", " "), err=True)
        sys.exit(err.exit_code)


# -- tenants -----------------------------------------------------------------

_db_option = click.option(
    "--db",
    envvar="BGSERVICE_DB",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The tenant database (SQLite file). Env: BGSERVICE_DB.",
)


@main.group("tenants", invoke_without_command=True)
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead.")
@click.pass_context
def tenants_group(ctx: click.Context, db: str, as_json: bool) -> None:
    """Show the tenants' admission state (the reference chassis' Gate).

    \b
    Examples:
      bgservice tenants
      bgservice tenants add acme globex
    """
    ctx.obj = db
    if ctx.invoked_subcommand is not None:
        return
    rows = [vars(tenant) for tenant in _open_store(db, _default_node_id()).tenants()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        columns = [
            "slug",
            "suspended",
            "deny_status",
            "deny_reason",
            "changed_at",
            "changed_by",
        ]
        _print_table(rows, columns)
    else:
        click.echo(f"no tenants in {db}; add one with: bgservice tenants add SLUG")


@tenants_group.command("add")
@click.argument("slugs", nargs=-1, required=True)
@click.pass_obj
def tenants_add(db: str, slugs: Sequence[str]) -> None:
    """Add admitted tenants; existing ones are left as they are.

    \b
    Example:
      bgservice tenants add acme globex
    """
    from bgservice_core.tenants import TenantError

    store = _open_store(db, _default_node_id())
    for slug in slugs:
        try:
            added = store.add_tenant(slug)
        except TenantError as err:
            raise click.BadParameter(str(err), param_hint="SLUGS") from err
        click.echo(f"{'added' if added else 'exists'}: {slug}")


def _open_store(db: str, node_id: str) -> Any:
    from bgservice_core.tenants import SQLiteTenantStore, TenantError

    try:
        return SQLiteTenantStore(db, node_id=node_id)
    except TenantError as err:
        raise click.ClickException(str(err)) from err


# -- run ---------------------------------------------------------------------


@main.command("run")
@click.argument("names", required=False, envvar=SERVICES_VARIABLE, default="")
@click.option(
    "--node-id",
    default=None,
    help="This node's stable identity. Default: the host's fully qualified name.",
)
@_db_option
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=25.0,
    show_default=True,
    help="Seconds all services together get to stop after SIGINT or SIGTERM.",
)
@click.option(
    "--start-timeout",
    type=click.FloatRange(min=0, min_open=True),
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
    ignored. A second SIGINT or SIGTERM while draining exits at once.

    \b
    Exit codes:
      0  drained cleanly          5  a service failed to start
      1  internal error           6  a service did not stop in time
      2  usage error              7  a service's stop() raised
      3  unknown, conflicting     8  a service crashed while running
         or repeated name         9  forced exit by a second signal
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
        node_id=node_id or _default_node_id(),
        store=_open_store(db, node_id or _default_node_id()),
        drain_timeout=drain_timeout,
        start_timeout=start_timeout,
        crash_policy=on_crash,
    )
    _exit(code)


def _exit(code: ExitCode) -> NoReturn:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    if code is ExitCode.DRAIN_TIMEOUT:
        # A service's non-daemon thread may still be running; the interpreter
        # would wait for it forever at exit.
        os._exit(code)
    sys.exit(code)


def _default_node_id() -> str:
    return socket.getfqdn()


if __name__ == "__main__":
    main()
