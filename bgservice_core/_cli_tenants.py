"""``bgservice tenants``: the reference chassis' tenant admission state."""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Sequence
from pathlib import Path

import click
from click.core import ParameterSource

from bgservice_core._cli_shared import (
    db_option,
    default_node_id,
    open_store,
    print_table,
)


@click.group("tenants", invoke_without_command=True)
@db_option
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
        tenants = open_store(db, default_node_id()).tenants()
    except TenantError as err:
        raise click.ClickException(str(err)) from err
    rows = [dataclasses.asdict(tenant) for tenant in tenants]

    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        print_table(rows, list(rows[0]))
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

    store = open_store(db_here or db, default_node_id())
    for slug in slugs:
        try:
            added = store.add_tenant(slug)
        except TenantError as err:
            # A locked or read-only file: a message, not a traceback.
            raise click.ClickException(str(err)) from err
        click.echo(f"{'added' if added else 'exists'}: {slug}")
