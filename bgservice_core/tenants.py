"""The reference chassis' tenant admission state, kept in an embedded SQLite file.

:class:`SQLiteTenantStore` is the :class:`~bgservice_core.Gate` that
``bgservice run`` hands to its services. One row per tenant records whether the
tenant is suspended, the status and reason a denied request gets, and when and by
which chassis node the row last changed.

A chassis with its own tenant database implements :class:`~bgservice_core.Gate`
over that instead; this module only exists so the reference chassis is real.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bgservice_core._errors import BGServiceError
from bgservice_core.dsn import looks_like_libpq_keywords, redact_dsn

#: Lowercase letters, digits and inner hyphens, like a DNS label.
SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

#: Seconds a writer waits for another writer's lock before giving up.
BUSY_TIMEOUT_SECONDS = 5.0

_COLUMNS = "slug, suspended, deny_status, deny_reason, changed_at, changed_by"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    slug        TEXT PRIMARY KEY,
    suspended   INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),
    deny_status INTEGER,
    deny_reason TEXT NOT NULL DEFAULT '',
    changed_at  TEXT NOT NULL,
    changed_by  TEXT NOT NULL
)
"""


class TenantError(BGServiceError, ValueError):
    """A gate change or tenant operation was refused; nothing was changed."""


class UnknownTenantError(TenantError, LookupError):
    """The slug names no tenant in the store.

    :param slug: the slug asked for.
    """

    def __init__(self, slug: str) -> None:
        self.slug = slug
        super().__init__(
            f"no tenant with slug {slug!r}; add it first (bgservice tenants add {slug})"
        )


@dataclasses.dataclass(frozen=True)
class Tenant:
    """One tenant's admission state."""

    slug: str
    suspended: bool
    deny_status: int | None
    deny_reason: str
    changed_at: str
    changed_by: str

    def with_gate(
        self, suspended: bool, deny_status: int, deny_reason: str, node_id: str
    ) -> Tenant:
        """Return this row after a gate change by ``node_id``, as a store saves it.

        A release clears the deny status and reason.
        """
        return dataclasses.replace(
            self,
            suspended=suspended,
            deny_status=deny_status if suspended else None,
            deny_reason=deny_reason if suspended else "",
            # Never older than the change it replaces, even if this node's
            # clock is behind the node that made that change.
            changed_at=max(_now(), self.changed_at),
            changed_by=node_id,
        )


class SQLiteTenantStore:
    """Tenant admission state in a SQLite database file; a thread-safe Gate.

    Each call opens its own connection, so services may call :meth:`set_gate`
    from their own threads.

    :param path: the database file; created, with its table, when missing.
    :param node_id: the chassis node recorded as the author of each change.
    """

    def __init__(self, path: str | Path, node_id: str) -> None:
        self.path = Path(path)
        self.node_id = node_id
        if str(path) in ("", ":memory:"):
            # Every call opens its own connection, and each would get a fresh,
            # empty database: nothing would be kept.
            raise _unusable_database(path, "it is not a file")
        if looks_like_libpq_keywords(str(path)):
            # Taken as a file name, it would create a file named after the password.
            raise TenantError(
                f"cannot use {redact_dsn(str(path))!r} as the tenant database: it is "
                "a key=value connection string; write a postgresql:// URL instead, "
                "such as postgresql://user:password@host:5432/dbname"
            )
        if self.path.is_dir():
            raise _unusable_database(path, "it is a directory")

        try:
            self._prepare()
        except sqlite3.Error as err:
            raise _unusable_database(path, _explain(err)) from err

    def _prepare(self) -> None:
        connection = self._connect()
        try:
            # WAL is a property of the file, so setting it once is enough: readers
            # then never wait for a writer, and a writer never waits for readers.
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()
        with self._transaction(write=True) as connection:
            connection.execute(_SCHEMA)
            # Creating a table that exists writes nothing, so a read-only file
            # would pass; rewriting the header's user version is a real write
            # that changes nothing, and it fails now rather than at the first
            # set_gate of a running chassis.
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            connection.execute(f"PRAGMA user_version = {int(version)}")

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        """Engage or release the tenant's gate in one read-modify-write transaction.

        The whole row is read and written back under the write lock, stamped
        with this node and the time. Releasing clears the deny status and
        reason; the ones passed with a release are only checked for type.

        :raises TenantError: the slug, flag, status or reason is invalid.
        :raises UnknownTenantError: no tenant has this slug.
        """
        check_slug(slug)
        _check_gate_change(suspended, deny_status, deny_reason)

        with self._transaction(write=True) as connection:
            rows = _select_rows(connection, "WHERE slug = ?", (slug,))
            if not rows:
                raise UnknownTenantError(slug)
            changed = rows[0].with_gate(
                suspended, deny_status, deny_reason, self.node_id
            )
            _update_row(connection, changed)

    def add_tenant(self, slug: str) -> bool:
        """Add an admitted tenant; return False if it existed already."""
        check_slug(slug)
        with self._transaction(write=True) as connection:
            cursor = connection.execute(
                "INSERT INTO tenants (slug, changed_at, changed_by) VALUES (?, ?, ?)"
                " ON CONFLICT (slug) DO NOTHING",
                (slug, _now(), self.node_id),
            )
            return cursor.rowcount == 1

    def get(self, slug: str) -> Tenant:
        """Return one tenant's state.

        :raises UnknownTenantError: no tenant has this slug.
        """
        tenants = self._select("WHERE slug = ?", (slug,))
        if not tenants:
            raise UnknownTenantError(slug)
        return tenants[0]

    def tenants(self) -> list[Tenant]:
        """Return every tenant, sorted by slug."""
        return self._select("ORDER BY slug", ())

    def _select(self, clause: str, parameters: tuple[str, ...]) -> list[Tenant]:
        with self._transaction(write=False) as connection:
            return _select_rows(connection, clause, parameters)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: the transactions below are begun explicitly.
        return sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
        )

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """Run the block in one transaction on a connection of its own.

        A writer begins IMMEDIATE, taking the write lock before its first read,
        so a concurrent writer waits (up to the busy timeout) instead of
        overwriting what was read. A reader begins DEFERRED: under WAL it reads a
        consistent snapshot without taking the write lock, so listing tenants
        neither waits for nor delays a writer.
        """
        try:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
                try:
                    yield connection
                except BaseException:
                    # SQLite may already have rolled back after its own error.
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            finally:
                connection.close()
        except sqlite3.Error as err:
            raise _unusable_database(self.path, _explain(err)) from err


def _select_rows(
    connection: sqlite3.Connection, clause: str, parameters: tuple[str, ...]
) -> list[Tenant]:
    rows: list[tuple[Any, ...]] = connection.execute(
        f"SELECT {_COLUMNS} FROM tenants {clause}", parameters
    ).fetchall()
    return [
        Tenant(slug, bool(suspended), status, reason, changed_at, changed_by)
        for slug, suspended, status, reason, changed_at, changed_by in rows
    ]


def _update_row(connection: sqlite3.Connection, tenant: Tenant) -> None:
    connection.execute(
        "UPDATE tenants SET suspended = ?, deny_status = ?, deny_reason = ?,"
        " changed_at = ?, changed_by = ? WHERE slug = ?",
        (
            int(tenant.suspended),
            tenant.deny_status,
            tenant.deny_reason,
            tenant.changed_at,
            tenant.changed_by,
            tenant.slug,
        ),
    )


def _unusable_database(path: str | Path, reason: str) -> TenantError:
    return TenantError(
        f"cannot use {str(path)!r} as the tenant database: {reason}; "
        "point --db or BGSERVICE_DB at a writable SQLite file"
    )


#: What to do about a SQLite failure, by its primary result code; SQLite's own
#: words say enough for the rest ("unable to open database file").
_ADVICE = {
    "SQLITE_BUSY": "another process holds it locked; retry when it has finished",
    "SQLITE_LOCKED": "another process holds it locked; retry when it has finished",
    "SQLITE_READONLY": "the file is read-only; make it writable for this user",
    "SQLITE_CORRUPT": "the file is damaged; restore it from a backup",
    "SQLITE_FULL": "the disk is full; free some space and retry",
}


def _explain(err: sqlite3.Error) -> str:
    """Say what went wrong and what to do, quoting SQLite's own words."""
    name = getattr(err, "sqlite_errorname", "") or ""
    # Extended codes, such as SQLITE_READONLY_DBMOVED, share the advice.
    primary = "_".join(name.split("_")[:2])
    advice = _ADVICE.get(primary)
    return f"{advice} (SQLite says: {err})" if advice else str(err)


def check_slug(slug: str) -> None:
    """Reject a slug that is not a lowercase DNS-label-like name."""
    if not isinstance(slug, str) or not SLUG_PATTERN.fullmatch(slug):
        raise TenantError(
            f"invalid tenant slug {slug!r}: use 1 to 63 lowercase letters, digits "
            "and inner hyphens, such as 'acme-corp'"
        )


def _check_gate_change(suspended: bool, deny_status: int, deny_reason: str) -> None:
    """Reject a malformed change; a release ignores the status and reason."""
    if not isinstance(suspended, bool):
        raise TenantError(
            f"invalid suspended flag {suspended!r}: use True to suspend the tenant "
            "or False to readmit it"
        )
    # A wrongly typed status is a caller's bug even when releasing, so say so.
    if isinstance(deny_status, bool) or not isinstance(deny_status, int):
        raise TenantError(
            f"invalid deny status {deny_status!r}: use an HTTP status from 400 to 599"
        )
    if suspended:
        _check_denial(deny_status, deny_reason)


def _check_denial(deny_status: int, deny_reason: str) -> None:
    if not 400 <= deny_status <= 599:
        raise TenantError(
            f"invalid deny status {deny_status}: a denied request needs an HTTP "
            "error status from 400 to 599, such as 402 or 403"
        )
    if not isinstance(deny_reason, str) or not deny_reason.strip():
        raise TenantError(
            "a suspension needs a deny reason, such as 'credit_exhausted', so "
            "operators can tell why the tenant is denied"
        )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
