"""The ``heartbeat`` backend: records this chassis node's liveness in SQLite.

Every period it upserts one row per node: node id, process id, when the process
started, when it last beat and how many beats it made. On a drain it writes a
final beat with ``stopped_at``, so a node that shut down cleanly can be told
apart from one that died (whose ``stopped_at`` stays empty and whose
``last_beat_at`` grows old).

Settings (environment variables):

``BGSERVICE_HEARTBEAT_PERIOD``
    Seconds between beats; at least 0.01, default 10.
``BGSERVICE_HEARTBEAT_DB``
    The SQLite file; default ``BGSERVICE_DB``, else ``bgservice.db``, which is
    the reference chassis' own database.

A bad value, or a database file that cannot be written, is reported when the
service is built, naming the variable, so the chassis refuses to start.

A beat that cannot be written because the database is busy, locked or
briefly unwritable (a backup, an open ``sqlite3`` shell) is a missed beat, not
a crash: it is logged once as a WARNING, and once more at INFO when beats
resume. A final beat that cannot be written is logged as an ERROR; the row
then keeps ``stopped_at`` empty, as for a node that died.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
from pathlib import Path

from bgservice_core import (
    Config,
    LoopService,
    SettingError,
    hookimpl,
    read_seconds,
    read_text,
)
from bgservice_core.dsn import looks_like_libpq_keywords, redact_dsn

PERIOD_VARIABLE = "BGSERVICE_HEARTBEAT_PERIOD"
DB_VARIABLE = "BGSERVICE_HEARTBEAT_DB"
#: The chassis' own database, used when DB_VARIABLE is not set.
CHASSIS_DB_VARIABLE = "BGSERVICE_DB"
DEFAULT_PERIOD = 10.0
#: The shortest period accepted: a shorter one turns the loop into a busy loop
#: of writes that starves the chassis' own use of the database.
MINIMUM_PERIOD = 0.01
DEFAULT_DATABASE = "bgservice.db"

#: Seconds a write waits for another writer (the chassis, say) to finish.
BUSY_TIMEOUT_SECONDS = 5.0

#: Primary SQLite result codes that can clear by themselves: another process
#: holds the lock, or the file or disk is briefly unavailable. Anything else,
#: such as a constraint or an SQL error, is a bug and crashes the loop.
_TRANSIENT_CODES = frozenset(
    {
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_IOERR",
        "SQLITE_FULL",
        "SQLITE_READONLY",
        "SQLITE_CANTOPEN",
        "SQLITE_PROTOCOL",
    }
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heartbeats (
    node_id      TEXT PRIMARY KEY,
    pid          INTEGER NOT NULL,
    started_at   TEXT NOT NULL,
    last_beat_at TEXT NOT NULL,
    beat_count   INTEGER NOT NULL,
    stopped_at   TEXT
)
"""


class HeartbeatService(LoopService):
    """Write a beat for this node every period, and a final one on stop.

    :param config: the chassis' configuration; ``node_id`` keys the row.
    :param database: the SQLite file to write to.
    :param period: seconds between beats.
    """

    def __init__(self, config: Config, database: Path, period: float) -> None:
        super().__init__(config, period)
        self.database = database
        self._connection: sqlite3.Connection | None = None
        self._started_at = ""
        self._beats = 0
        self._missed = 0

    def setup(self) -> None:
        # The connection belongs to the loop's thread, which does all the writes.
        self._connection = _connect(self.database)
        # A restarted node begins its row afresh: start, count and stop reset.
        self._started_at = _now()
        self._beats = 0
        self._missed = 0
        try:
            self._beat(self._started_at, beats=0)
        except BaseException:
            # teardown() does not run after a failed setup(), so close it here.
            self._close()
            raise

        self.logger.info(
            "beating every %gs into %s as node %r",
            self.period,
            redact_dsn(str(self.database)),
            self.config.node_id,
        )

    def tick(self) -> None:
        self._beat(_now(), beats=self._beats + 1)

    def teardown(self) -> None:
        if self._connection is None:
            return
        try:
            # Only a requested stop is a clean one; after a crash the row keeps
            # stopped_at empty, so the node reads as having died.
            if self.stopping:
                self._final_beat()
        finally:
            self._close()

    def _beat(self, last_beat_at: str, *, beats: int) -> None:
        """Write a running beat; a transient database failure only misses it."""
        try:
            self._write_row(last_beat_at=last_beat_at, beats=beats, stopped=False)
        except sqlite3.OperationalError as err:
            if not _is_transient(err):
                raise
            self._missed += 1
            # One warning per streak: a long lock must not flood the log.
            if self._missed == 1:
                self.logger.warning(
                    "heartbeat missed a beat, will retry every %gs: %s (SQLite "
                    "says: %s)",
                    self.period,
                    redact_dsn(str(self.database)),
                    err,
                )
            return

        self._beats = beats
        if self._missed:
            self.logger.info("heartbeat resumed after %d missed beat(s)", self._missed)
            self._missed = 0

    def _final_beat(self) -> None:
        """Write the stop beat, or say why the row will read as a dead node."""
        beats = self._beats + 1
        try:
            self._write_row(last_beat_at=_now(), beats=beats, stopped=True)
        except sqlite3.OperationalError as err:
            if not _is_transient(err):
                raise
            # Nothing raises this to anyone, so it is an ERROR, not a WARNING.
            self.logger.error(
                "final beat not written to %s, so node %r will read as having "
                "died (SQLite says: %s)",
                redact_dsn(str(self.database)),
                self.config.node_id,
                err,
            )
            return
        self._beats = beats
        self.logger.info("final beat written; node %r stopped", self.config.node_id)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _write_row(self, *, last_beat_at: str, beats: int, stopped: bool) -> None:
        """Upsert this node's whole row.

        Writing every column, not incrementing, recreates a row that an
        operator pruned while the node was running.
        """
        if self._connection is None:
            raise RuntimeError("the heartbeat database is not open")
        with self._connection:
            self._connection.execute(_SCHEMA)
            self._connection.execute(
                "INSERT INTO heartbeats (node_id, pid, started_at, last_beat_at,"
                " beat_count, stopped_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (node_id) DO UPDATE SET pid = excluded.pid,"
                " started_at = excluded.started_at,"
                " last_beat_at = excluded.last_beat_at,"
                " beat_count = excluded.beat_count,"
                " stopped_at = excluded.stopped_at",
                (
                    self.config.node_id,
                    os.getpid(),
                    self._started_at,
                    last_beat_at,
                    beats,
                    last_beat_at if stopped else None,
                ),
            )


@hookimpl
def bgservice_build_service(config: Config) -> HeartbeatService:
    """Build the heartbeat service from its environment settings."""
    period = read_seconds(PERIOD_VARIABLE, DEFAULT_PERIOD, minimum=MINIMUM_PERIOD)
    variable, text = _database_setting()
    database = _usable_database(variable, text)
    return HeartbeatService(config, database, period)


def _database_setting() -> tuple[str, str]:
    """Return the variable that names the database, and the path it gives."""
    for variable in (DB_VARIABLE, CHASSIS_DB_VARIABLE):
        if variable in os.environ:
            return variable, read_text(variable, DEFAULT_DATABASE)
    return DB_VARIABLE, DEFAULT_DATABASE


def _usable_database(variable: str, text: str) -> Path:
    """Check the path and create the table, so a bad one stops the chassis now."""
    _refuse_non_file(variable, text)
    database = Path(text)
    if database.is_dir():
        raise SettingError(variable, text, "a file path, not a directory")
    if not database.parent.is_dir():
        raise SettingError(
            variable,
            text,
            f"a file in an existing directory; {database.parent} is not a directory",
        )

    try:
        _prove_writable(database)
    except sqlite3.Error as err:
        raise SettingError(
            variable, text, f"a writable SQLite file (SQLite says: {err})"
        ) from err
    return database


def _refuse_non_file(variable: str, text: str) -> None:
    """Refuse a connection string or an in-memory database, password hidden."""
    if text == ":memory:":
        # Each connection gets its own empty database: every beat would vanish.
        raise SettingError(
            variable, text, "a SQLite file path; an in-memory database keeps no beats"
        )
    if looks_like_libpq_keywords(text):
        raise SettingError(
            variable,
            redact_dsn(text),
            f"a SQLite file path, not a key=value connection string; the heartbeat "
            f"writes to SQLite (set {DB_VARIABLE} to a file when the chassis "
            f"database is not SQLite)",
        )
    # Check the text as written: Path() would fold "sqlite:///x" to "sqlite:/x".
    if "://" in text:
        # The URL may carry a password, as a chassis' PostgreSQL --db does.
        raise SettingError(
            variable,
            redact_dsn(text),
            f"a SQLite file path, not a URL; the heartbeat writes to SQLite (set "
            f"{DB_VARIABLE} to a file when the chassis database is not SQLite)",
        )


def _prove_writable(database: Path) -> None:
    """Create the table, then write to the file and take the write back.

    CREATE TABLE IF NOT EXISTS writes nothing when the table exists, so on its
    own it lets a read-only file through, to fail at the first beat instead.
    """
    connection = _connect(database)
    try:
        with connection:
            connection.execute(_SCHEMA)
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Rewriting the header's user version is a write that changes nothing.
            connection.execute(f"PRAGMA user_version = {int(version)}")
        finally:
            connection.rollback()
    finally:
        connection.close()


def _is_transient(err: sqlite3.OperationalError) -> bool:
    """Whether the failure may clear by itself, such as a lock held elsewhere."""
    name = getattr(err, "sqlite_errorname", "") or ""
    # Extended codes, such as SQLITE_BUSY_SNAPSHOT, share their primary's fate.
    return "_".join(name.split("_")[:2]) in _TRANSIENT_CODES


def _connect(database: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        # WAL lets the chassis read its tenants while a beat is being written.
        connection.execute("PRAGMA journal_mode=WAL")
    except BaseException:
        connection.close()
        raise
    return connection


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
