"""The credit-gate tick on ledgers of many tenants, SQLite and PostgreSQL.

A ledger of N tenants has 1 % of them out of credit (balance 0, at the default
threshold) and the rest with credit. The backend's engagement table already
records every exhausted tenant as engaged, as it would after the tick that
suspended them: the ticks measured have nothing to change. Each is compared
with the same selection made as one plain SQL query (in ``credit_tick.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.util
import os
import sqlite3
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from benchmarks.cases import Bench, progress
from benchmarks.harness import Command, Summary
from benchmarks.rows import Row, milliseconds, not_measured, verdict

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SCRIPT = ROOT / ".ci" / "postgres.sh"

#: Every hundredth tenant is out of credit.
EXHAUSTED_EVERY = 100

#: How much a tick's cost per tenant may grow with the ledger and still count
#: as linear growth: the noise of a shared machine, not a trend.
GROWTH_TOLERANCE = 1.10

_BENCH_DATABASE = "bgservice_bench"


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server could be had; the message says why."""


def credit_gate_case(bench: Bench) -> list[Row]:
    """Steady-state credit-gate ticks on growing ledgers, SQLite then PostgreSQL."""
    if importlib.util.find_spec("bgservice_credit_gate") is None:
        reason = "bgservice-credit-gate is not installed (pip install ./plugins/*)"
        return [not_measured("credit-gate tick", reason)]

    rows = _credit_gate_rows(bench, "SQLite", None)
    try:
        start = bench.settings.start_postgres
        with postgres_database(start_server=start) as dsn:
            rows += _credit_gate_rows(bench, "PostgreSQL", dsn)
    except PostgresUnavailableError as err:
        rows.append(not_measured("credit-gate tick, PostgreSQL", str(err)))
    return rows


def _credit_gate_rows(bench: Bench, kind: str, server: str | None) -> list[Row]:
    rows = []
    for tenants in bench.settings.ledger_sizes:
        progress(f"measuring the credit-gate tick: {tenants:,} tenants, {kind}")
        dsn = _fill_ledger(bench, tenants, server)
        command = Command(
            "tick()",
            bench.child("credit_tick", dsn, str(bench.settings.ledger_rounds)),
        )
        (summary,) = bench.spawner.measure(
            [command],
            bench.environment(),
            repeats=bench.settings.ledger_repeats,
            warmup=0,
        )
        rows.append(_tick_row(summary, tenants, kind))
    if len(rows) > 1:
        rows.append(_growth_row(rows[0], rows[-1], kind))
    return rows


def _fill_ledger(bench: Bench, tenants: int, server: str | None) -> str:
    if server is not None:
        fill_postgres(server, tenants, node_id="bench.example")
        return server
    path = bench.scratch / f"ledger-{tenants}.db"
    fill_sqlite(path, tenants, node_id="bench.example")
    return str(path)


def _tick_row(summary: Summary, tenants: int, kind: str) -> Row:
    tick, query = summary.median("tick"), summary.median("query")
    calls = max(summary.values("calls"))
    ratio = tick / query
    row = Row(
        case="credit-gate tick, steady state",
        environment=f"{tenants:,} tenants, {kind}",
        ours="tick()",
        ours_ms=tick * 1000,
        baseline="one plain SQL query",
        baseline_ms=query * 1000,
        ratio=ratio,
        net_ratio=None,
        target=1.5,
        verdict=verdict(ratio, 1.5),
        ours_rss_mib=summary.peak_rss_mib(),
        note=f"{calls:.0f} Gate calls; {tick / tenants * 1e6:.2f} µs per tenant",
        ours_quartiles_ms=milliseconds(summary.quartiles("tick")),
        baseline_quartiles_ms=milliseconds(summary.quartiles("query")),
    )
    # A steady state that calls the Gate is no steady state: wrong, not slow.
    return dataclasses.replace(row, verdict="MISSED") if calls else row


def _growth_row(smallest: Row, largest: Row, kind: str) -> Row:
    small, large = _tenants(smallest), _tenants(largest)
    scale = large // small
    linear = smallest.ours_ms * scale
    ratio = largest.ours_ms / linear
    query_growth = (largest.baseline_ms or 0) / ((smallest.baseline_ms or 1) * scale)
    return Row(
        case="credit-gate tick, growth",
        environment=f"{small:,} to {large:,} tenants, {kind}",
        ours=f"tick() at {large:,}",
        ours_ms=largest.ours_ms,
        baseline=f"tick() at {small:,}, times {scale}",
        baseline_ms=linear,
        ratio=ratio,
        net_ratio=None,
        target=GROWTH_TOLERANCE,
        verdict=verdict(ratio, GROWTH_TOLERANCE),
        note=f"linear growth is 1.00; the plain query's is {query_growth:.2f}",
    )


def _tenants(row: Row) -> int:
    return int(row.environment.partition(" ")[0].replace(",", ""))


def slug(number: int) -> str:
    """Return the slug of tenant ``number``."""
    return f"tenant-{number:07d}"


def rows(tenants: int) -> Iterator[tuple[str, int]]:
    """Yield each tenant's slug and balance: 0 for every hundredth, else more."""
    for number in range(tenants):
        exhausted = number % EXHAUSTED_EVERY == 0
        yield slug(number), 0 if exhausted else 1 + number % 997


def engaged(tenants: int, node_id: str) -> Iterator[tuple[str, str, str, str]]:
    """Yield the engagement record of every exhausted tenant."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    for number in range(0, tenants, EXHAUSTED_EVERY):
        yield slug(number), "engaged", now, node_id


def fill_sqlite(path: Path, tenants: int, node_id: str) -> None:
    """Write a steady-state ledger and engagement table into a new SQLite file."""
    from bgservice_credit_gate import _engagements, ledger

    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute(ledger.SCHEMA)
            connection.execute(_engagements._SCHEMA)
            connection.executemany(
                f"INSERT INTO {ledger.TABLE} VALUES (?, ?)", rows(tenants)
            )
            connection.executemany(
                f"INSERT INTO {_engagements.TABLE} VALUES (?, ?, ?, ?)",
                engaged(tenants, node_id),
            )
    finally:
        connection.close()


def fill_postgres(dsn: str, tenants: int, node_id: str) -> None:
    """Write a steady-state ledger and engagement table, replacing any there."""
    import psycopg
    from bgservice_credit_gate import _engagements, ledger

    with psycopg.connect(dsn, autocommit=True) as connection:
        for table in (ledger.TABLE, _engagements.TABLE):
            connection.execute(f"DROP TABLE IF EXISTS {table}")
        connection.execute(ledger.SCHEMA)
        connection.execute(_engagements._SCHEMA)
        with connection.cursor().copy(f"COPY {ledger.TABLE} FROM STDIN") as copy:
            for balance in rows(tenants):
                copy.write_row(balance)
        with connection.cursor().copy(f"COPY {_engagements.TABLE} FROM STDIN") as copy:
            for record in engaged(tenants, node_id):
                copy.write_row(record)
        # What autovacuum would do soon after a bulk load, done now.
        connection.execute(f"VACUUM ANALYZE {ledger.TABLE}")
        connection.execute(f"VACUUM ANALYZE {_engagements.TABLE}")


@contextlib.contextmanager
def postgres_database(*, start_server: bool = True) -> Iterator[str]:
    """Yield the URL of an empty database of our own, dropped afterwards.

    The server is the one ``BGSERVICE_TEST_POSTGRES_DSN`` names, else, with
    ``start_server``, the throwaway server ``.ci/postgres.sh`` starts or reuses.

    :raises PostgresUnavailableError: there is no server, or no psycopg.
    """
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        raise PostgresUnavailableError(
            "psycopg is not installed (pip install -e '.[bench]')"
        ) from None

    server = os.environ.get("BGSERVICE_TEST_POSTGRES_DSN", "").strip()
    if not server and not start_server:
        raise PostgresUnavailableError(
            "BGSERVICE_TEST_POSTGRES_DSN is not set, and a quick run starts no server"
        )
    server = server or _start_server()
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_BENCH_DATABASE))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        sql.Identifier(_BENCH_DATABASE)
    )
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
            admin.execute(drop)
            admin.execute(create)
    except psycopg.Error as err:
        raise PostgresUnavailableError(f"the server refused: {err}") from err

    try:
        yield (
            urllib.parse.urlsplit(server)._replace(path=f"/{_BENCH_DATABASE}").geturl()
        )
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(drop)


def _start_server() -> str:
    if not POSTGRES_SCRIPT.is_file():
        raise PostgresUnavailableError(f"{POSTGRES_SCRIPT.name} is missing")
    # Sourced in a shell of its own, which prints the URL the script exports.
    script = f'. "{POSTGRES_SCRIPT}" >&2 && printf %s "$BGSERVICE_TEST_POSTGRES_DSN"'
    try:
        completed = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PostgresUnavailableError(
            ".ci/postgres.sh did not finish in 300 s"
        ) from None
    if completed.returncode != 0 or not completed.stdout:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise PostgresUnavailableError(f".ci/postgres.sh failed: {last}")
    return completed.stdout
