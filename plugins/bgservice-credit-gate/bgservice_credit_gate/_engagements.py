"""What the service has engaged, kept where every node running it can see it.

One row per tenant whose gate this service engaged, is engaging or releasing:

    CREATE TABLE credit_gate_engagements (
        slug       TEXT PRIMARY KEY,
        phase      TEXT NOT NULL,  -- engaging, engaged or releasing
        changed_at TEXT NOT NULL,
        changed_by TEXT NOT NULL   -- the chassis node that wrote it
    );

A tick works inside a :meth:`EngagementStore.session`, which only one node at a
time can hold: on PostgreSQL a session-level advisory lock, on SQLite an
exclusive ``flock`` on a file next to the database. Both are released by the
operating system or the server when the holder dies, even by ``kill -9``.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bgservice_credit_gate._locations import (
    Location,
    UnreachableDatabaseError,
    connect_postgres,
)

if TYPE_CHECKING:
    from bgservice_credit_gate._locations import PostgresConnection

TABLE = "credit_gate_engagements"
ROLE = "engagement store"
#: Seconds to wait for the server, or for a SQLite writer's lock.
TIMEOUT_SECONDS = 5.0
#: The PostgreSQL advisory lock a tick holds: "bgcredit" in ASCII.
TICK_LOCK_KEY = 0x6267_6372_6564_6974

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    slug       TEXT PRIMARY KEY,
    phase      TEXT NOT NULL
               CHECK (phase IN ('engaging', 'engaged', 'releasing')),
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL
)
"""

_UPSERT = (
    f"INSERT INTO {TABLE} (slug, phase, changed_at, changed_by) VALUES ({{0}})"
    " ON CONFLICT (slug) DO UPDATE SET phase = excluded.phase,"
    " changed_at = excluded.changed_at, changed_by = excluded.changed_by"
)


class Phase(enum.Enum):
    """Where this service's hold on one tenant's gate stands."""

    #: About to call the Gate to engage, or did and has not yet recorded it.
    ENGAGING = "engaging"
    #: The Gate has engaged it on this service's behalf.
    ENGAGED = "engaged"
    #: About to call the Gate to release, or did and has not yet recorded it.
    RELEASING = "releasing"


class EngagementSession(Protocol):
    """The engagement records, for one tick that holds the tick lock."""

    def load(self) -> dict[str, Phase]:
        """Return every recorded tenant's phase."""

    def record(self, slug: str, phase: Phase) -> None:
        """Durably record the tenant's phase before returning."""

    def forget(self, slug: str) -> None:
        """Durably drop the tenant's record: it is released."""

    def connection_to(self, location: Location) -> PostgresConnection | None:
        """Return the session's own connection if ``location`` is its database.

        A ledger kept in the store's PostgreSQL database is read through it,
        which spares the tick a second connection.
        """


class EngagementStore(Protocol):
    """Opens sessions on the engagement records."""

    def session(self) -> AbstractContextManager[EngagementSession | None]:
        """Hold the tick lock for the block; None if another node holds it.

        :raises UnreachableDatabaseError: the store cannot be used now.
        """


def open_engagement_store(location: Location, node_id: str) -> EngagementStore:
    """Return the store at ``location``; nothing is opened until a session."""
    if location.path is None:
        return PostgresEngagements(location, node_id)
    return SQLiteEngagements(location, location.path, node_id)


_PHASES = {phase.value: phase for phase in Phase}


class _Session:
    """The records, read and written through the connection a session holds.

    Each statement commits on its own: a write is durable when it returns, and
    no lock is held between statements, while the Gate is called.

    :param location: the database, for messages.
    :param connection: an autocommit connection to it.
    :param node_id: recorded as the author of each write.
    """

    def __init__(
        self,
        location: Location,
        connection: sqlite3.Connection | PostgresConnection,
        node_id: str,
    ) -> None:
        self.location = location
        self.connection = connection
        self.node_id = node_id
        mark = "?" if isinstance(connection, sqlite3.Connection) else "%s"
        self._upsert = _UPSERT.format(", ".join([mark] * 4))
        self._delete = f"DELETE FROM {TABLE} WHERE slug = {mark}"

    def load(self) -> dict[str, Phase]:
        with self.location.errors_as(ROLE):
            cursor = self.connection.execute(f"SELECT slug, phase FROM {TABLE}")
            rows = cursor.fetchall()
        # A dictionary, not Phase(value): a fleet's records are many per tick.
        return {slug: _PHASES[phase] for slug, phase in rows}

    def record(self, slug: str, phase: Phase) -> None:
        with self.location.errors_as(ROLE):
            row = (slug, phase.value, _now(), self.node_id)
            self.connection.execute(self._upsert, row)

    def forget(self, slug: str) -> None:
        with self.location.errors_as(ROLE):
            self.connection.execute(self._delete, (slug,))

    def connection_to(self, location: Location) -> PostgresConnection | None:
        if isinstance(self.connection, sqlite3.Connection):
            # A SQLite ledger is opened read-only, apart from the store.
            return None
        return self.connection if location.dsn == self.location.dsn else None


# -- SQLite ---------------------------------------------------------------


class SQLiteEngagements:
    """Engagement records in a SQLite file; a session is one connection.

    :param location: the database, for messages.
    :param path: the SQLite file.
    :param node_id: recorded as the author of each write.
    """

    def __init__(self, location: Location, path: Path, node_id: str) -> None:
        self.location = location
        self.path = path
        self.node_id = node_id
        # Beside the database, so every process using that file finds it.
        self.lock_path = path.with_name(f"{path.name}-credit-gate.lock")

    @contextlib.contextmanager
    def session(self) -> Iterator[EngagementSession | None]:
        """Hold an exclusive flock on the lock file for the block."""
        try:
            descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            error = UnreachableDatabaseError(ROLE, self.location, str(err))
            raise error from err
        try:
            if not _try_flock(descriptor):
                yield None
                return
            with self._connection() as connection:
                yield _Session(self.location, connection, self.node_id)
        finally:
            # Closing the descriptor releases the lock.
            os.close(descriptor)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self.location.errors_as(ROLE):
            connection = sqlite3.connect(
                self.path, timeout=TIMEOUT_SECONDS, isolation_level=None
            )
        try:
            with self.location.errors_as(ROLE):
                connection.execute(_SCHEMA)
            yield connection
        finally:
            connection.close()


# -- PostgreSQL -----------------------------------------------------------


class PostgresEngagements:
    """Engagement records in PostgreSQL; a session is one connection.

    :param location: the database.
    :param node_id: recorded as the author of each write.
    """

    def __init__(self, location: Location, node_id: str) -> None:
        self.location = location
        self.node_id = node_id

    @contextlib.contextmanager
    def session(self) -> Iterator[EngagementSession | None]:
        """Hold the tick's advisory lock, on a connection of its own."""
        with self.location.errors_as(ROLE):
            connection = connect_postgres(self.location.dsn, TIMEOUT_SECONDS)
        try:
            with self.location.errors_as(ROLE):
                row = connection.execute(
                    "SELECT pg_try_advisory_lock(%s)", (TICK_LOCK_KEY,)
                ).fetchone()
                locked = row is not None and bool(row[0])
                if locked:
                    connection.execute(_SCHEMA)
            if not locked:
                yield None
                return
            yield _Session(self.location, connection, self.node_id)
        finally:
            # Ending the server session releases its advisory lock.
            connection.close()


def _try_flock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _now() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="milliseconds")
