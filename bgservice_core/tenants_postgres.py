"""The reference chassis' tenant admission state in PostgreSQL, for a fleet.

:class:`PostgresTenantStore` keeps the same rows as
:class:`~bgservice_core.tenants.SQLiteTenantStore`, with the same semantics:
each :meth:`~PostgresTenantStore.set_gate` is one transaction that reads the
whole row under a row lock (``SELECT ... FOR UPDATE``) and writes it back, so
two chassis nodes changing one tenant wait for each other instead of losing an
update.

Every change is announced on the ``bgservice_tenants`` channel with
``pg_notify`` inside its transaction; PostgreSQL delivers the announcement only
once the transaction commits. A store opened with ``listen=True`` hears the
changes other processes make, reloads the tenant and logs it.

:func:`open_tenant_store` picks SQLite or PostgreSQL from the ``--db`` value.
Importing this module does not import psycopg, which is an optional extra:
``pip install 'bgservice-core[postgres]'``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from bgservice_core.dsn import (
    is_postgres_url,
    redact_dsn,
    redact_secrets,
)
from bgservice_core.tenants import (
    SQLiteTenantStore,
    Tenant,
    TenantError,
    UnknownTenantError,
    _check_gate_change,
    _now,
    check_slug,
)

if TYPE_CHECKING:
    import psycopg

    Connection = psycopg.Connection[Any]

logger = logging.getLogger("bgservice.tenants")

#: The channel every committed change to a tenant row is announced on.
CHANGES_CHANNEL = "bgservice_tenants"
#: Seconds to wait for the server when connecting.
CONNECT_TIMEOUT_SECONDS = 5
#: Seconds a set_gate waits for a free pooled connection.
POOL_TIMEOUT_SECONDS = 10.0
#: Seconds between attempts to get the change feed back after losing it.
RELISTEN_SECONDS = 2.0

# Serializes CREATE TABLE IF NOT EXISTS: two nodes starting at once would
# otherwise race on the catalog and one would fail with a duplicate key.
_SCHEMA_LOCK_KEY = 0x6267_7465_6E61_6E74  # "bgtenant"
_LISTEN_POLL_SECONDS = 0.5
_COLUMNS = "slug, suspended, deny_status, deny_reason, changed_at, changed_by"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    slug        TEXT PRIMARY KEY,
    suspended   BOOLEAN NOT NULL DEFAULT FALSE,
    deny_status INTEGER,
    deny_reason TEXT NOT NULL DEFAULT '',
    changed_at  TEXT NOT NULL,
    changed_by  TEXT NOT NULL
)
"""

#: Receives each tenant reloaded after another process changed it.
ReloadHandler = Callable[[Tenant], None]


def open_tenant_store(
    db: str, node_id: str, *, listen: bool = False
) -> SQLiteTenantStore | PostgresTenantStore:
    """Open the tenant store ``db`` names: a PostgreSQL URL or a SQLite file.

    :param listen: for PostgreSQL, also reload and log the tenants that other
        processes change; a SQLite file has no change feed.
    :raises TenantError: the database cannot be used.
    """
    if is_postgres_url(db):
        return PostgresTenantStore(db, node_id, listen=listen)
    return SQLiteTenantStore(db, node_id)


class PostgresTenantStore:
    """Tenant admission state in a PostgreSQL database; a thread-safe Gate.

    Calls borrow connections from a small pool, so services may call
    :meth:`set_gate` from their own threads. :meth:`close` releases the pool
    and the listening thread.

    :param dsn: a ``postgresql://`` URL; the table is created when missing.
    :param node_id: the chassis node recorded as the author of each change.
    :param listen: start a thread that reloads and logs the tenants other
        processes change.
    :param on_reload: also called with each reloaded tenant, in that thread.
    :raises TenantError: the driver is missing or the database unreachable.
    """

    def __init__(
        self,
        dsn: str,
        node_id: str,
        *,
        listen: bool = False,
        on_reload: ReloadHandler | None = None,
    ) -> None:
        _require_driver()
        import psycopg
        import psycopg_pool

        self.node_id = node_id
        self.database = redact_dsn(dsn)
        self.on_reload = on_reload
        self._dsn = dsn
        # Tells this store's own announcements apart from other processes'.
        self._origin = uuid.uuid4().hex
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None

        try:
            with self._connect() as connection:
                _create_schema(connection)
        except psycopg.Error as err:
            raise self._unusable(err) from None

        self._pool = psycopg_pool.ConnectionPool[Any](
            dsn,
            min_size=1,
            max_size=4,
            open=False,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=POOL_TIMEOUT_SECONDS,
            name="bgservice-tenants",
        )
        self._pool.open(wait=False)
        if listen:
            self._start_listening()

    def __repr__(self) -> str:
        node = self.node_id
        return f"PostgresTenantStore({self.database!r}, node_id={node!r})"

    # -- the Gate --------------------------------------------------------

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        """Engage or release the tenant's gate in one read-modify-write.

        One transaction: the row is locked while it is read and written
        back, stamped with this node and the time; the change is announced
        when it commits. Releasing clears the deny status and reason.

        :raises TenantError: the slug, flag, status or reason is invalid.
        :raises UnknownTenantError: no tenant has this slug.
        """
        check_slug(slug)
        _check_gate_change(suspended, deny_status, deny_reason)

        with self._transaction() as connection:
            # The lock makes a second node's change wait for this one.
            locked = "WHERE slug = %s FOR UPDATE"
            rows = _select_rows(connection, locked, (slug,))
            if not rows:
                raise UnknownTenantError(slug)
            changed = rows[0].with_gate(
                suspended, deny_status, deny_reason, self.node_id
            )
            connection.execute(
                "UPDATE tenants SET suspended = %s, deny_status = %s,"
                " deny_reason = %s, changed_at = %s, changed_by = %s"
                " WHERE slug = %s",
                (
                    changed.suspended,
                    changed.deny_status,
                    changed.deny_reason,
                    changed.changed_at,
                    changed.changed_by,
                    changed.slug,
                ),
            )
            self._announce(connection, slug)

    # -- tenants ---------------------------------------------------------

    def add_tenant(self, slug: str) -> bool:
        """Add an admitted tenant; return False if it existed already."""
        check_slug(slug)
        with self._transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO tenants (slug, changed_at, changed_by)"
                " VALUES (%s, %s, %s) ON CONFLICT (slug) DO NOTHING",
                (slug, _now(), self.node_id),
            )
            added = cursor.rowcount == 1
            if added:
                self._announce(connection, slug)
        return added

    def get(self, slug: str) -> Tenant:
        """Return one tenant's state.

        :raises UnknownTenantError: no tenant has this slug.
        """
        with self._transaction() as connection:
            tenants = _select_rows(connection, "WHERE slug = %s", (slug,))
        if not tenants:
            raise UnknownTenantError(slug)
        return tenants[0]

    def tenants(self) -> list[Tenant]:
        """Return every tenant, sorted by slug."""
        with self._transaction() as connection:
            return _select_rows(connection, "ORDER BY slug", ())

    def close(self) -> None:
        """Stop listening and close the pooled connections; idempotent."""
        self._closing.set()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join()
        self._pool.close()

    def __enter__(self) -> PostgresTenantStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connections -----------------------------------------------------

    def _connect(self) -> Connection:
        import psycopg

        timeout = CONNECT_TIMEOUT_SECONDS
        return psycopg.connect(self._dsn, connect_timeout=timeout)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """Borrow a connection and run the block in one transaction on it."""
        with self._pool.connection() as connection, connection.transaction():
            yield connection

    def _announce(self, connection: Connection, slug: str) -> None:
        change = {"slug": slug, "node": self.node_id, "origin": self._origin}
        connection.execute(
            "SELECT pg_notify(%s, %s)", (CHANGES_CHANNEL, json.dumps(change))
        )

    def _unusable(self, error: BaseException) -> TenantError:
        # The driver's message is kept but scrubbed, and the error is raised
        # from None, so that no traceback can show the password either.
        reason = redact_secrets(str(error).strip(), self._dsn)
        return TenantError(
            f"cannot use {self.database!r} as the tenant database: {reason}; "
            "point --db or BGSERVICE_DB at a reachable PostgreSQL database"
        )

    # -- the change feed -------------------------------------------------

    def _start_listening(self) -> None:
        import psycopg

        # The first LISTEN happens here, before any service starts, so that no
        # change made after the chassis is up can go unheard.
        try:
            connection = self._listening_connection()
        except psycopg.Error as err:
            self._pool.close()
            raise self._unusable(err) from None
        self._listener = threading.Thread(
            target=self._listen,
            args=(connection,),
            name="bgservice-tenant-changes",
            daemon=True,
        )
        self._listener.start()
        logger.info("listening for tenant changes in %s", self.database)

    def _listening_connection(self) -> Connection:
        connection = self._connect()
        connection.autocommit = True
        connection.execute(f"LISTEN {CHANGES_CHANNEL}")
        return connection

    def _listen(self, connection: Connection) -> None:
        import psycopg

        while not self._closing.is_set():
            try:
                notices = connection.notifies(timeout=_LISTEN_POLL_SECONDS)
                for notice in notices:
                    self._on_notify(notice.payload)
            except psycopg.Error as err:
                connection.close()
                reconnected = self._listen_again(err)
                if reconnected is None:
                    return
                connection = reconnected
        connection.close()

    def _listen_again(self, error: BaseException) -> Connection | None:
        """Reconnect until it works or the store closes; reload everything."""
        import psycopg

        logger.warning(
            "lost the tenant change feed of %s: %s; reconnecting every %gs",
            self.database,
            redact_secrets(str(error).strip(), self._dsn),
            RELISTEN_SECONDS,
        )
        while not self._closing.wait(RELISTEN_SECONDS):
            try:
                connection = self._listening_connection()
            except psycopg.Error as err:
                logger.debug("no tenant change feed yet: %s", err.sqlstate)
                continue
            # Changes made while the feed was down were not heard here.
            logger.info("tenant change feed back; reloading every tenant")
            self._reload_all()
            return connection
        return None

    def _on_notify(self, payload: str) -> None:
        try:
            change = json.loads(payload)
            slug, node = change["slug"], change["node"]
            origin = change["origin"]
        except (ValueError, TypeError, KeyError):
            logger.warning("ignored a malformed tenant change: %r", payload)
            return
        if origin == self._origin:
            return
        try:
            tenant = self.get(slug)
        except UnknownTenantError:
            logger.info("tenant %r changed by node %r is gone", slug, node)
            return
        except Exception as err:  # noqa: BLE001 - the feed must outlive this
            logger.warning(
                "could not reload tenant %r changed by node %r: %s",
                slug,
                node,
                err,
            )
            return
        self._report_reload(tenant, f"a change by node {node!r}")

    def _reload_all(self) -> None:
        try:
            tenants = self.tenants()
        except Exception as err:  # noqa: BLE001 - the feed must outlive this
            logger.warning("could not reload the tenants: %s", err)
            return
        for tenant in tenants:
            self._report_reload(tenant, "the change feed came back")

    def _report_reload(self, tenant: Tenant, cause: str) -> None:
        slug = tenant.slug
        state = _state(tenant)
        logger.info("reloaded tenant %r after %s: %s", slug, cause, state)
        if self.on_reload is None:
            return
        try:
            self.on_reload(tenant)
        except Exception:
            # One failing handler must not end the feed for every other change.
            logger.exception("the reload handler failed for tenant %r", slug)


def _require_driver() -> None:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as err:
        raise TenantError(
            f"a PostgreSQL tenant database needs psycopg, which is not "
            f"installed ({err}); install it with: "
            "pip install 'bgservice-core[postgres]'"
        ) from err


def _create_schema(connection: Connection) -> None:
    with connection.transaction():
        lock = "SELECT pg_advisory_xact_lock(%s)"
        connection.execute(lock, (_SCHEMA_LOCK_KEY,))
        connection.execute(_SCHEMA)


def _select_rows(
    connection: Connection, clause: str, parameters: tuple[str, ...]
) -> list[Tenant]:
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM tenants {clause}", parameters
    ).fetchall()
    return [
        Tenant(slug, bool(suspended), status, reason, changed_at, changed_by)
        for slug, suspended, status, reason, changed_at, changed_by in rows
    ]


def _state(tenant: Tenant) -> str:
    if tenant.suspended:
        return f"suspended ({tenant.deny_status} {tenant.deny_reason})"
    return "admitted"
