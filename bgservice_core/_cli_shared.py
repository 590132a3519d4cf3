"""What the ``bgservice`` commands share: the --db option, the tenant store, tables."""

from __future__ import annotations

from typing import Any

import click

from bgservice_core._errors import ENTRY_POINT_GROUP, ExitCode

DEFAULT_DB = "bgservice.db"


db_option = click.option(
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


class UnusableDatabase(click.ClickException):
    """A ``--db`` that ``run`` cannot use: its configuration is unusable."""

    exit_code = ExitCode.CONFIG_ERROR


def open_store(
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


def default_node_id() -> str:
    import socket

    return socket.getfqdn()


def print_table(
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
