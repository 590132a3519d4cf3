"""Steady-state ticks of the credit-gate backend, each followed by the same
selection made as one plain SQL query. Usage: credit_tick.py DSN ROUNDS."""

from __future__ import annotations

import logging
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

from _report import report

#: The same selection as a tick makes, as one plain SQL query.
CHANGES_DUE = Path(__file__).with_name("changes_due.sql").read_text()

dsn, rounds = sys.argv[1], int(sys.argv[2])
postgres = dsn.startswith("postgresql://")
os.environ["BGSERVICE_CREDIT_DSN"] = os.environ["BGSERVICE_CREDIT_STATE_DSN"] = dsn

import bgservice_core  # noqa: E402

if postgres:
    import psycopg  # both sides use it warm


class CountingGate:
    def __init__(self) -> None:
        self.calls = 0

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        self.calls += 1


def plain_query() -> int:
    if postgres:
        with psycopg.connect(dsn, autocommit=True) as connection:
            return len(connection.execute(CHANGES_DUE).fetchall())
    uri = f"{Path(dsn).resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True)
    try:
        return len(connection.execute(CHANGES_DUE).fetchall())
    finally:
        connection.close()


gate = CountingGate()
config = bgservice_core.Config(
    logger=logging.getLogger("bench"), gate=gate, node_id="bench.example"
)
(service,) = bgservice_core.open("credit-gate", config)

# The tick is called directly: the loop's thread and period are not measured.
service.tick()  # type: ignore[attr-defined]
plain_query()
gate.calls = 0
ticks, queries, selected = [], [], 0
for _ in range(rounds):
    began = time.perf_counter()
    service.tick()  # type: ignore[attr-defined]
    ticks.append(time.perf_counter() - began)
    began = time.perf_counter()
    selected += plain_query()
    queries.append(time.perf_counter() - began)

report(
    tick=statistics.median(ticks),
    query=statistics.median(queries),
    calls=gate.calls,
    selected=selected,
)
