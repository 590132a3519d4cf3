"""The credit ledger: the billing system's table of tenant balances, read only.

The billing system owns and writes the table; this service only reads it::

    CREATE TABLE credit_balances (
        slug    TEXT PRIMARY KEY,  -- the tenant's slug in the chassis
        balance NUMERIC NOT NULL   -- remaining credit, in any unit
    );

A tick reads only the rows it may act on (:func:`select_balances`): the
database does the selecting, so the work left to Python grows with the tenants
out of credit, not with the ledger. :mod:`bgservice_credit_gate.billing` stands
in for the billing system in demos and tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import math
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bgservice_credit_gate._locations import (
    Location,
    UnreachableDatabaseError,
    connect_postgres,
)

if TYPE_CHECKING:
    from bgservice_credit_gate._locations import PostgresConnection

TABLE = "credit_balances"
ROLE = "credit ledger"
#: Seconds a read waits for the server, or for a SQLite writer's lock.
TIMEOUT_SECONDS = 5.0
#: Slugs per keyed lookup on SQLite, far below its limit on bound parameters.
LOOKUP_BATCH = 500

#: The table as documented above; only the stand-in billing system creates it.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    slug    TEXT PRIMARY KEY,
    balance NUMERIC NOT NULL
)
"""

#: One ledger row as the driver returns it: the slug and the raw balance.
Row = tuple[Any, Any]

_SELECT = f"SELECT slug, balance FROM {TABLE}"
# Unary plus drops the column's affinity, so values compare by storage class:
# every number sorts before any text, and text before any blob. Whatever is no
# finite number (text, a blob, infinity: 9e999) is thus at or above infinity,
# or null. A comparison, unlike a typeof() call per row, halves the scan.
_SQLITE_SCAN = f"{_SELECT} WHERE +balance <= ? OR +balance >= 9e999 OR balance IS NULL"
# NUMERIC sorts NaN above Infinity, and both above every number; -Infinity is
# at or below any threshold. Infinities exist from PostgreSQL 14 on: before,
# the literal is an error, and NaN is the one value to look for. The cast, a
# no-op on NUMERIC, lets an integer or float column be compared too.
_POSTGRES_SCAN = (
    f"{_SELECT} WHERE balance <= %s OR balance IS NULL OR balance::numeric >= {{0}}"
)
_POSTGRES_LOOKUP = f"{_SELECT} WHERE slug = ANY(%s)"


@dataclasses.dataclass(frozen=True)
class LedgerSnapshot:
    """Balances read in one go.

    :param balances: each tenant's balance.
    :param unreadable: rows whose balance is no finite number, as found.
    """

    balances: dict[str, Decimal]
    unreadable: dict[str, object]

    def __contains__(self, slug: object) -> bool:
        """Whether the ledger had a row for ``slug``, readable or not."""
        return slug in self.balances or slug in self.unreadable

    def add(self, rows: Iterable[Row]) -> None:
        """Sort ``rows`` into the balances and the unreadable rows."""
        for slug, raw in rows:
            balance = as_decimal(raw)
            if balance is None:
                self.unreadable[str(slug)] = raw
            else:
                self.balances[str(slug)] = balance


def select_balances(
    location: Location,
    threshold: Decimal,
    recorded: Collection[str],
    *,
    connection: PostgresConnection | None = None,
) -> LedgerSnapshot:
    """Read the rows a tick may act on, and no others.

    One scan, filtered by the database, finds every tenant at or below
    ``threshold`` and every row whose balance is no finite number. The recorded
    tenants it did not return are then looked up by key, which tells those
    topped up from those gone from the ledger. The scan may return a few rows
    just above the threshold: the exact comparison is the caller's.

    :param recorded: the tenants the engagement store has records of.
    :param connection: an open connection to the ledger's PostgreSQL database
        to read through, instead of opening one.
    :raises UnreachableDatabaseError: the ledger cannot be read now.
    """
    snapshot = LedgerSnapshot({}, {})
    with location.errors_as(ROLE), _reader(location, connection) as reader:
        snapshot.add(reader.scan(threshold))
        unseen = sorted(slug for slug in recorded if slug not in snapshot)
        if unseen:
            snapshot.add(reader.look_up(unseen))
    return snapshot


def read_balances(location: Location) -> LedgerSnapshot:
    """Read every tenant's balance from the ledger at ``location``.

    :raises UnreachableDatabaseError: the ledger cannot be read now.
    """
    snapshot = LedgerSnapshot({}, {})
    with location.errors_as(ROLE), _reader(location, None) as reader:
        snapshot.add(reader.everything())
    return snapshot


def as_decimal(value: object) -> Decimal | None:
    """Return ``value`` as a finite Decimal, or None if it is none."""
    # First what most rows hold, SQLite's integers and PostgreSQL's NUMERIC: a
    # tick converts many.
    if type(value) is int:
        return Decimal(value)
    if type(value) is Decimal:
        return value if value.is_finite() else None
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


class _Reader(Protocol):
    def scan(self, threshold: Decimal) -> list[Row]: ...

    def look_up(self, slugs: list[str]) -> list[Row]: ...

    def everything(self) -> list[Row]: ...


@contextlib.contextmanager
def _reader(
    location: Location, connection: PostgresConnection | None
) -> Iterator[_Reader]:
    if location.path is not None:
        with _sqlite_connection(location, location.path) as opened:
            yield _SQLiteReader(opened)
    elif connection is not None:
        yield _PostgresReader(connection)
    else:
        with connect_postgres(location.dsn, TIMEOUT_SECONDS) as own:
            yield _PostgresReader(own)


@contextlib.contextmanager
def _sqlite_connection(location: Location, path: Path) -> Iterator[sqlite3.Connection]:
    if not path.is_file():
        reason = "the file does not exist"
        raise UnreachableDatabaseError(ROLE, location, reason)
    # Read-only: the ledger belongs to the billing system.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=TIMEOUT_SECONDS)
    try:
        yield connection
    finally:
        connection.close()


class _SQLiteReader:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def scan(self, threshold: Decimal) -> list[Row]:
        # The float next above the threshold: rounding it to a float must not
        # drop a row at the threshold itself.
        bound = math.nextafter(float(threshold), math.inf)
        return self.connection.execute(_SQLITE_SCAN, (bound,)).fetchall()

    def look_up(self, slugs: list[str]) -> list[Row]:
        rows: list[Row] = []
        for start in range(0, len(slugs), LOOKUP_BATCH):
            batch = slugs[start : start + LOOKUP_BATCH]
            marks = ", ".join("?" * len(batch))
            query = f"{_SELECT} WHERE slug IN ({marks})"
            rows += self.connection.execute(query, batch).fetchall()
        return rows

    def everything(self) -> list[Row]:
        return self.connection.execute(_SELECT).fetchall()


class _PostgresReader:
    def __init__(self, connection: PostgresConnection) -> None:
        self.connection = connection

    def scan(self, threshold: Decimal) -> list[Row]:
        infinite = self.connection.info.server_version >= 140000
        query = _POSTGRES_SCAN.format("'Infinity'" if infinite else "'NaN'")
        return self.connection.execute(query, (threshold,)).fetchall()

    def look_up(self, slugs: list[str]) -> list[Row]:
        return self.connection.execute(_POSTGRES_LOOKUP, (slugs,)).fetchall()

    def everything(self) -> list[Row]:
        return self.connection.execute(_SELECT).fetchall()
