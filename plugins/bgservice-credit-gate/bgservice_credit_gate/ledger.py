"""The credit ledger: the billing system's table of tenant balances, read only.

The billing system owns and writes the table; this service only reads it::

    CREATE TABLE credit_balances (
        slug    TEXT PRIMARY KEY,  -- the tenant's slug in the chassis
        balance NUMERIC NOT NULL   -- remaining credit, in any unit
    );

:mod:`bgservice_credit_gate.billing` stands in for the billing system in demos
and tests.
"""

from __future__ import annotations

import dataclasses
import decimal
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

from bgservice_credit_gate._locations import Location, UnreachableDatabaseError

TABLE = "credit_balances"
ROLE = "credit ledger"
#: Seconds a read waits for the server, or for a SQLite writer's lock.
TIMEOUT_SECONDS = 5.0

#: The table as documented above; only the stand-in billing system creates it.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    slug    TEXT PRIMARY KEY,
    balance NUMERIC NOT NULL
)
"""


@dataclasses.dataclass(frozen=True)
class LedgerSnapshot:
    """The balances read in one go.

    :param balances: each tenant's balance.
    :param unreadable: rows whose balance is no finite number, as found.
    """

    balances: dict[str, Decimal]
    unreadable: dict[str, object]


def read_balances(location: Location) -> LedgerSnapshot:
    """Read every tenant's balance from the ledger at ``location``.

    :raises UnreachableDatabaseError: the ledger cannot be read now.
    """
    path = location.path
    with location.errors_as(ROLE):
        if path is None:
            rows = _read_postgres(location.dsn)
        else:
            rows = _read_sqlite(location, path)

    snapshot = LedgerSnapshot({}, {})
    for slug, raw in rows:
        balance = as_decimal(raw)
        if balance is None:
            snapshot.unreadable[str(slug)] = raw
        else:
            snapshot.balances[str(slug)] = balance
    return snapshot


def as_decimal(value: object) -> Decimal | None:
    """Return ``value`` as a finite Decimal, or None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        # Through repr, so that 0.1 stays 0.1 rather than its binary expansion.
        value = repr(value)
    if not isinstance(value, int | str | Decimal):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except decimal.InvalidOperation:
        return None
    return number if number.is_finite() else None


def _read_sqlite(location: Location, path: Path) -> list[tuple[Any, Any]]:
    if not path.is_file():
        reason = "the file does not exist"
        raise UnreachableDatabaseError(ROLE, location, reason)
    # Read-only: the ledger belongs to the billing system.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=TIMEOUT_SECONDS)
    try:
        cursor = connection.execute(f"SELECT slug, balance FROM {TABLE}")
        return cursor.fetchall()
    finally:
        connection.close()


def _read_postgres(dsn: str) -> list[tuple[Any, Any]]:
    import psycopg

    with psycopg.connect(
        dsn, connect_timeout=int(TIMEOUT_SECONDS), autocommit=True
    ) as connection:
        # A stuck read would hold up the tick, and with it the chassis' drain.
        milliseconds = int(TIMEOUT_SECONDS * 1000)
        connection.execute(f"SET statement_timeout = {milliseconds}")
        cursor = connection.execute(f"SELECT slug, balance FROM {TABLE}")
        return cursor.fetchall()
