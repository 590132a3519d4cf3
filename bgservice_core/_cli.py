"""The ``bgservice`` command: list backends, manage tenants, run the chassis."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from bgservice_core._errors import ENTRY_POINT_GROUP, BGServiceError, ExitCode
from bgservice_core._version import __version__

#: The environment variable ``bgservice run`` reads its backend list from.
SERVICES_VARIABLE = "BGSERVICE_BACKGROUND_SERVICES"
DEFAULT_DB = "bgservice.db"

_IDENTITY_COLUMNS = ["name", "distribution", "version"]

#: Marks the verdict ``check-one`` prints. A backend's own output is no verdict,
#: and neither is a zero exit: it may call os._exit(0) while being imported.
_VERDICT_PREFIX = "bgservice-check: "
#: Seconds one backend's import may take under ``list --check``.
CHECK_TIMEOUT = 60.0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="bgservice")
def main() -> None:
    """Run background services from installed backend distributions.

    \b
    Examples:
      bgservice list
      bgservice tenants add acme
      bgservice run heartbeat
      bgservice new cleanup
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
    selecting it in 'bgservice run' is an error until one is uninstalled. A name
    no backend list can select (one with a comma or whitespace, or "nop") is
    flagged as invalid; its distribution must rename the entry point.

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
        columns = [*_IDENTITY_COLUMNS, "entry_point", "summary"]
        _print_table(rows, columns, as_text=True)
    else:
        click.echo(f"no backends installed in entry-point group {ENTRY_POINT_GROUP!r}")


def _backend_rows(backends: dict[str, list[Any]]) -> list[dict[str, Any]]:
    from bgservice_core._discovery import backend_name_problem

    return [
        {
            "name": name,
            "distribution": entry.distribution,
            "version": entry.version,
            "entry_point": entry.value,
            "summary": entry.summary,
            "conflict": len(entries) > 1,
            "valid_name": backend_name_problem(name) is None,
        }
        for name, entries in backends.items()
        for entry in entries
    ]


def _print_table(
    rows: list[dict[str, Any]], columns: list[str], *, as_text: bool = False
) -> None:
    from tabulate import tabulate

    table = [[_cell(row, column) for column in columns] for row in rows]
    headers = [column.replace("_", " ") for column in columns]
    # as_text stops tabulate reading "1.10" as a number and printing "1.1".
    click.echo(
        tabulate(table, headers=headers, tablefmt="simple", disable_numparse=as_text)
    )
    if any(row.get("conflict") for row in rows):
        click.echo(
            "\nCONFLICT: more than one distribution offers this name; selecting it "
            "is an error until all but one are uninstalled.",
            err=True,
        )
    invalid = [row for row in rows if not row.get("valid_name", True)]
    if invalid:
        click.echo("\n" + "\n".join(map(_invalid_name_note, invalid)), err=True)


def _invalid_name_note(row: dict[str, Any]) -> str:
    from bgservice_core._discovery import backend_name_problem

    return (
        f"INVALID NAME: {backend_name_problem(row['name'])}; no backend list can "
        f"select it, so distribution {row['distribution']} must rename its entry "
        f"point in group {ENTRY_POINT_GROUP!r}."
    )


def _cell(row: dict[str, Any], column: str) -> Any:
    if column != "name":
        return row[column]
    # repr() shows where a name has whitespace that the table would hide.
    name = row["name"] if row.get("valid_name", True) else repr(row["name"])
    flags = [
        flag
        for flag, raised in [
            ("CONFLICT", row.get("conflict")),
            ("INVALID NAME", not row.get("valid_name", True)),
        ]
        if raised
    ]
    return " ".join([name, *(f"({flag})" for flag in flags)])


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
        _print_table(rows, [*_IDENTITY_COLUMNS, "status"], as_text=True)
    else:
        click.echo(f"no backends installed in entry-point group {ENTRY_POINT_GROUP!r}")
    if any(row["status"] != "ok" for row in rows):
        sys.exit(ExitCode.LOAD_ERROR)


def _check_in_subprocess(name: str) -> str:
    # -P keeps the working directory off sys.path: the check must import what
    # ``bgservice run`` would, not a same-named source tree under the cwd.
    command = [sys.executable, "-P", "-m", "bgservice_core._cli", "check-one", name]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=CHECK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"import did not finish within {CHECK_TIMEOUT:g} s"

    verdicts = [
        line.removeprefix(_VERDICT_PREFIX)
        for line in (completed.stdout + "\n" + completed.stderr).splitlines()
        if line.startswith(_VERDICT_PREFIX)
    ]
    verdict = verdicts[-1] if verdicts else None
    if verdict == "ok" and completed.returncode == 0:
        return "ok"
    if verdict is not None and verdict != "ok":
        return verdict
    return _abnormal_exit(completed.returncode)


def _abnormal_exit(returncode: int) -> str:
    if returncode < 0:
        return f"the check process was killed by signal {-returncode}"
    return (
        f"the check process exited with code {returncode} without a verdict; "
        "the backend may end the interpreter while being imported"
    )


@main.command("check-one", hidden=True)
@click.argument("name")
def check_one(name: str) -> None:
    """Import and validate one backend; used by 'bgservice list --check'.

    \b
    Example:
      bgservice check-one heartbeat
    """
    from bgservice_core._opening import load_constructor, resolve_backends

    try:
        load_constructor(resolve_backends([name])[0])
    except BGServiceError as err:
        click.echo(_VERDICT_PREFIX + str(err).replace("\n", " "), err=True)
        sys.exit(err.exit_code)
    click.echo(_VERDICT_PREFIX + "ok")


# -- tenants -----------------------------------------------------------------

_db_option = click.option(
    "--db",
    envvar="BGSERVICE_DB",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help=(
        "The tenant database: a SQLite file, or a postgresql:// URL (needs "
        "bgservice-core[postgres]). Env: BGSERVICE_DB."
    ),
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
    _refuse_missing_database(ctx, db)
    from bgservice_core.tenants import TenantError

    try:
        tenants = _open_store(db, _default_node_id()).tenants()
    except TenantError as err:
        raise click.ClickException(str(err)) from err
    rows = [dataclasses.asdict(tenant) for tenant in tenants]

    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        _print_table(rows, list(rows[0]))
    else:
        from bgservice_core.dsn import redact_dsn

        shown = redact_dsn(db)
        click.echo(f"no tenants in {shown}; add one with: {_add_example(ctx, shown)}")


def _refuse_missing_database(ctx: click.Context, db: str) -> None:
    """Stop a listing of a SQLite file that does not exist, before it is created."""
    from bgservice_core.dsn import is_postgres_url, looks_like_libpq_keywords

    # A connection string is the store's to refuse, with its password hidden.
    if is_postgres_url(db) or looks_like_libpq_keywords(db) or Path(db).exists():
        return
    raise click.ClickException(
        f"no tenant database at {db!r}; add a tenant to create it: "
        f"{_add_example(ctx, db)}"
    )


def _add_example(ctx: click.Context, db: str) -> str:
    # A --db typed on the command line is not remembered, so the example repeats it.
    if ctx.get_parameter_source("db") is ParameterSource.COMMANDLINE:
        return f"bgservice tenants --db {shlex.quote(db)} add SLUG"
    return "bgservice tenants add SLUG"


@tenants_group.command("add")
@click.argument("slugs", nargs=-1, required=True)
@click.option(
    "--db",
    "db_here",
    default=None,
    type=click.Path(dir_okay=False),
    help="The tenant database, when not given before 'add'.",
)
@click.pass_obj
def tenants_add(db: str, slugs: Sequence[str], db_here: str | None) -> None:
    """Add admitted tenants; existing ones are left as they are.

    \b
    Examples:
      bgservice tenants add acme globex
      bgservice tenants add acme --db /var/lib/bgservice/bgservice.db
    """
    from bgservice_core.tenants import TenantError, check_slug

    # Every slug is checked before any is added, so a typo changes nothing.
    for slug in slugs:
        try:
            check_slug(slug)
        except TenantError as err:
            raise click.BadParameter(str(err), param_hint="SLUGS") from err

    store = _open_store(db_here or db, _default_node_id())
    for slug in slugs:
        try:
            added = store.add_tenant(slug)
        except TenantError as err:
            # A locked or read-only file: a message, not a traceback.
            raise click.ClickException(str(err)) from err
        click.echo(f"{'added' if added else 'exists'}: {slug}")


class _UnusableDatabase(click.ClickException):
    """A ``--db`` that ``run`` cannot use: its configuration is unusable."""

    exit_code = ExitCode.CONFIG_ERROR


def _open_store(
    db: str,
    node_id: str,
    *,
    listen: bool = False,
    error: type[click.ClickException] = click.ClickException,
) -> Any:
    from bgservice_core.tenants import TenantError
    from bgservice_core.tenants_postgres import PostgresTenantStore, open_tenant_store

    try:
        store = open_tenant_store(db, node_id, listen=listen)
    except TenantError as err:
        raise error(str(err)) from err
    if isinstance(store, PostgresTenantStore):
        # It holds pooled connections, and a listening thread, until closed.
        click.get_current_context().call_on_close(store.close)
    return store


# -- run ---------------------------------------------------------------------


def _complete_backend_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Complete the name after the last comma from installed metadata only."""
    from bgservice_core._discovery import group_entry_points

    done, comma, current = incomplete.rpartition(",")
    # Keep what was typed before the current name, spaces included.
    prefix = done + comma + current[: len(current) - len(current.lstrip())]
    chosen = {name.strip() for name in done.split(",")}
    return [
        CompletionItem(prefix + name)
        for name in sorted(set(group_entry_points().names))
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


@main.command("run")
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
    help="This node's stable identity. Default: the host's fully qualified name.",
)
@_db_option
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
        node_id=node_id or _default_node_id(),
        store=_open_store(
            db,
            node_id or _default_node_id(),
            listen=True,
            error=_UnusableDatabase,
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


def _default_node_id() -> str:
    return socket.getfqdn()


# -- new ---------------------------------------------------------------------


@main.command("new")
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=(
        "The folder to create, or an empty one to fill; its parent must exist. "
        "Default: ./bgservice-NAME."
    ),
)
def new_command(name: str, directory: Path | None) -> None:
    """Create a backend distribution, ready to install and run.

    NAME is the backend name a backend list will select. The new distribution
    holds a working service with one setting, its entry point, and tests that
    run the conformance check; the output says what to do next.

    \b
    Examples:
      bgservice new cleanup
      bgservice new credit-gate --directory plugins/bgservice-credit-gate
    """
    from bgservice_core import _scaffold

    try:
        target = directory or _scaffold.default_directory(name)
        _scaffold.create_backend(name, target)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="NAME") from err
    except _scaffold.TargetDirectoryError as err:
        raise click.UsageError(str(err)) from err
    except OSError as err:
        # Whatever the file system refused: a path too long, a read-only place.
        reason = err.strerror or str(err)
        raise click.ClickException(
            f"cannot create the backend in {str(target)!r}: {reason}"
        ) from err

    click.echo(f"created backend {name!r} in {target}")
    for claimant in _scaffold.installed_claimants(name):
        click.echo(
            f"warning: backend {name!r} is already installed ({claimant}); "
            "installing this one as well makes the name a conflict",
            err=True,
        )
    click.echo(
        f"next:\n  cd {shlex.quote(str(target))}\n  pip install -e '.[test]'\n"
        f"  bgservice list\n  python -m pytest\n  bgservice run {name}"
    )


if __name__ == "__main__":
    main()
