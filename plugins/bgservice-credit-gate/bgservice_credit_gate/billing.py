"""A stand-in for the billing system: sets balances in a credit ledger.

For demos and tests only; in production the billing system writes the ledger.
Run it as ``python -m bgservice_credit_gate.billing acme=0 globex=25``: it
creates the ``credit_balances`` table when missing and sets the balances given.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from bgservice_credit_gate._locations import (
    Location,
    UnreachableDatabaseError,
    parse_location,
)
from bgservice_credit_gate.ledger import (
    ROLE,
    SCHEMA,
    TABLE,
    TIMEOUT_SECONDS,
    as_decimal,
)


def set_balances(location: Location, balances: dict[str, Decimal]) -> None:
    """Create the ledger table if missing and set the given balances."""
    upsert = (
        f"INSERT INTO {TABLE} (slug, balance) VALUES ({{0}}, {{0}})"
        " ON CONFLICT (slug) DO UPDATE SET balance = excluded.balance"
    )
    with location.errors_as(ROLE):
        if location.path is None:
            _set_postgres(location.dsn, upsert.format("%s"), balances)
        else:
            _set_sqlite(location.path, upsert.format("?"), balances)


def _set_postgres(dsn: str, upsert: str, balances: dict[str, Decimal]) -> None:
    import psycopg

    timeout = int(TIMEOUT_SECONDS)
    with psycopg.connect(dsn, connect_timeout=timeout) as connection:
        connection.execute(SCHEMA)
        connection.cursor().executemany(upsert, sorted(balances.items()))


def _set_sqlite(path: Path, upsert: str, balances: dict[str, Decimal]) -> None:
    # sqlite3 has no adapter for Decimal; NUMERIC affinity turns the text back
    # into a number.
    rows = [(slug, str(balance)) for slug, balance in sorted(balances.items())]
    connection = sqlite3.connect(path, timeout=TIMEOUT_SECONDS)
    try:
        with connection:
            connection.execute(SCHEMA)
            connection.executemany(upsert, rows)
    finally:
        connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Set balances in a ledger, as the billing system would."""
    parser = argparse.ArgumentParser(
        prog="python -m bgservice_credit_gate.billing",
        description="Set tenant balances in a credit ledger, creating its "
        "table when missing. It stands in for the billing system in demos "
        "and tests.",
    )
    parser.add_argument(
        "--dsn",
        default=(
            os.environ.get("BGSERVICE_CREDIT_DSN")
            or os.environ.get("BGSERVICE_DB")
            or "bgservice.db"
        ),
        help="a SQLite file or a postgresql:// URL; default: the ledger "
        "the service reads: BGSERVICE_CREDIT_DSN, else BGSERVICE_DB, else "
        "bgservice.db",
    )
    parser.add_argument(
        "balances",
        nargs="+",
        metavar="SLUG=BALANCE",
        help="e.g. acme=0 globex=25",
    )
    arguments = parser.parse_args(argv)

    balances: dict[str, Decimal] = {}
    for item in arguments.balances:
        slug, _, text = item.partition("=")
        balance = as_decimal(text)
        if not slug or balance is None:
            example = "such as acme=12.50"
            parser.error(f"{item!r} is no SLUG=BALANCE pair, {example}")
        balances[slug.strip()] = balance

    try:
        location = parse_location("--dsn", arguments.dsn)
        set_balances(location, balances)
    except (ValueError, UnreachableDatabaseError) as err:
        parser.exit(1, f"error: {err}\n")
    for slug, balance in sorted(balances.items()):
        print(f"{slug}: {balance}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
