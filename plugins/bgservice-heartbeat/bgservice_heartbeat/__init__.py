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

PERIOD_VARIABLE = "BGSERVICE_HEARTBEAT_PERIOD"
DB_VARIABLE = "BGSERVICE_HEARTBEAT_DB"
DEFAULT_PERIOD = 10.0

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

    def setup(self) -> None:
        # The connection belongs to the loop's thread, which does all the writes.
        self._connection = sqlite3.connect(self.database, timeout=5.0)
        self._connection.execute("PRAGMA journal_mode=WAL")
        now = _now()
        with self._connection:
            self._connection.execute(_SCHEMA)
            self._connection.execute(
                "INSERT INTO heartbeats (node_id, pid, started_at, last_beat_at,"
                " beat_count, stopped_at) VALUES (?, ?, ?, ?, 0, NULL)"
                " ON CONFLICT (node_id) DO UPDATE SET pid = excluded.pid,"
                " started_at = excluded.started_at,"
                " last_beat_at = excluded.last_beat_at,"
                " beat_count = 0, stopped_at = NULL",
                (self.config.node_id, os.getpid(), now, now),
            )
        self.logger.info(
            "beating every %gs into %s as node %r",
            self.period,
            self.database,
            self.config.node_id,
        )

    def tick(self) -> None:
        self._beat(stopped=False)

    def teardown(self) -> None:
        if self._connection is None:
            return
        try:
            self._beat(stopped=True)
            self.logger.info("final beat written; node %r stopped", self.config.node_id)
        finally:
            self._connection.close()
            self._connection = None

    def _beat(self, *, stopped: bool) -> None:
        if self._connection is None:
            raise RuntimeError("the heartbeat database is not open")
        now = _now()
        with self._connection:
            self._connection.execute(
                "UPDATE heartbeats SET last_beat_at = ?, beat_count = beat_count + 1,"
                " stopped_at = ? WHERE node_id = ?",
                (now, now if stopped else None, self.config.node_id),
            )


@hookimpl
def bgservice_build_service(config: Config) -> HeartbeatService:
    """Build the heartbeat service from its environment settings."""
    period = read_seconds(PERIOD_VARIABLE, DEFAULT_PERIOD)
    database = Path(
        read_text(DB_VARIABLE, os.environ.get("BGSERVICE_DB", "bgservice.db"))
    )
    _check_database_path(database)
    return HeartbeatService(config, database, period)


def _check_database_path(database: Path) -> None:
    if "://" in str(database):
        raise SettingError(
            DB_VARIABLE,
            str(database),
            "a SQLite file path; the heartbeat writes to SQLite",
        )
    if database.is_dir():
        raise SettingError(DB_VARIABLE, str(database), "a file path, not a directory")
    if not database.parent.is_dir():
        raise SettingError(
            DB_VARIABLE,
            str(database),
            f"a file in an existing directory ({database.parent} does not exist)",
        )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
