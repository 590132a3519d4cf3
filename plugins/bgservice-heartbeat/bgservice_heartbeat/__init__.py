"""The ``heartbeat`` backend: records this chassis node's liveness in SQLite.

Every period it upserts one row per node: node id, process id, when the process
started, when it last beat and how many beats it made. On a drain it writes a
final beat with ``stopped_at``, so a node that shut down cleanly can be told
apart from one that died (whose ``stopped_at`` stays empty and whose
``last_beat_at`` grows old).

Settings (environment variables):

``BGSERVICE_HEARTBEAT_PERIOD``
    Seconds between beats; a positive number, default 10.
``BGSERVICE_HEARTBEAT_DB``
    The SQLite file; default ``BGSERVICE_DB``, else ``bgservice.db``, which is
    the reference chassis' own database.

A bad value, or a database file that cannot be written, is reported when the
service is built, naming the variable, so the chassis refuses to start.
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
from bgservice_core.dsn import redact_dsn

PERIOD_VARIABLE = "BGSERVICE_HEARTBEAT_PERIOD"
DB_VARIABLE = "BGSERVICE_HEARTBEAT_DB"
#: The chassis' own database, used when DB_VARIABLE is not set.
CHASSIS_DB_VARIABLE = "BGSERVICE_DB"
DEFAULT_PERIOD = 10.0
DEFAULT_DATABASE = "bgservice.db"

#: Seconds a write waits for another writer (the chassis, say) to finish.
BUSY_TIMEOUT_SECONDS = 5.0

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

    def setup(self) -> None:
        # The connection belongs to the loop's thread, which does all the writes.
        self._connection = _connect(self.database)
        # A restarted node begins its row afresh: start, count and stop reset.
        self._started_at = _now()
        self._beats = 0
        try:
            with self._connection:
                self._connection.execute(_SCHEMA)
            self._write_row(last_beat_at=self._started_at, stopped=False)
        except BaseException:
            # teardown() does not run after a failed setup(), so close it here.
            self._close()
            raise

        self.logger.info(
            "beating every %gs into %s as node %r",
            self.period,
            self.database,
            self.config.node_id,
        )

    def tick(self) -> None:
        self._beats += 1
        self._write_row(last_beat_at=_now(), stopped=False)

    def teardown(self) -> None:
        if self._connection is None:
            return
        try:
            # Only a requested stop is a clean one; after a crash the row keeps
            # stopped_at empty, so the node reads as having died.
            if self.stopping:
                self._beats += 1
                self._write_row(last_beat_at=_now(), stopped=True)
                self.logger.info(
                    "final beat written; node %r stopped", self.config.node_id
                )
        finally:
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _write_row(self, *, last_beat_at: str, stopped: bool) -> None:
        """Upsert this node's whole row.

        Writing every column, not incrementing, recreates a row that an
        operator pruned while the node was running.
        """
        if self._connection is None:
            raise RuntimeError("the heartbeat database is not open")
        with self._connection:
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
                    self._beats,
                    last_beat_at if stopped else None,
                ),
            )


@hookimpl
def bgservice_build_service(config: Config) -> HeartbeatService:
    """Build the heartbeat service from its environment settings."""
    period = read_seconds(PERIOD_VARIABLE, DEFAULT_PERIOD)
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
    # Check the text as written: Path() would fold "sqlite:///x" to "sqlite:/x".
    if "://" in text:
        # The URL may carry a password, as a chassis' PostgreSQL --db does.
        raise SettingError(
            variable,
            redact_dsn(text),
            f"a SQLite file path, not a URL; the heartbeat writes to SQLite (set "
            f"{DB_VARIABLE} to a file when the chassis database is not SQLite)",
        )
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
        connection = _connect(database)
        try:
            with connection:
                connection.execute(_SCHEMA)
        finally:
            connection.close()
    except sqlite3.Error as err:
        raise SettingError(
            variable, text, f"a writable SQLite file (SQLite says: {err})"
        ) from err
    return database


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
