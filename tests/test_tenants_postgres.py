"""The PostgreSQL tenant store: SQLite's semantics, row locks, change feed."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bgservice_core import tenants_postgres
from bgservice_core._cli import main
from bgservice_core.dsn import is_postgres_url, redact_dsn, redact_secrets
from bgservice_core.tenants import (
    SQLiteTenantStore,
    Tenant,
    TenantError,
    UnknownTenantError,
)
from bgservice_core.tenants_postgres import PostgresTenantStore, open_tenant_store

SECRET = "s3cr3t-Pa55"
#: Nothing listens there: connecting fails at once, on loopback.
CLOSED_PORT_DSN = f"postgresql://bob:{SECRET}@127.0.0.1:1/nowhere"


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still false after {timeout:g}s: {condition.__doc__}")
        time.sleep(0.02)


@pytest.fixture
def store(bgservice_postgres_dsn: str) -> Iterator[PostgresTenantStore]:
    """A store for node-a on a fresh database."""
    with PostgresTenantStore(bgservice_postgres_dsn, "node-a") as opened:
        yield opened


def _connect(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


# -- choosing the store -------------------------------------------------------


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        ("postgresql://u@h/db", True),
        ("postgres://u@h/db", True),
        ("POSTGRESQL://u@h/db", True),
        ("bgservice.db", False),
        ("/var/lib/bgservice/postgresql.db", False),
        ("sqlite:///x.db", False),
    ],
)
def test_a_postgresql_url_selects_postgresql(db: str, expected: bool) -> None:
    """Only postgresql:// and postgres:// URLs name a PostgreSQL database."""
    assert is_postgres_url(db) is expected


def test_the_factory_opens_a_sqlite_file_for_a_path(tmp_path: Path) -> None:
    """A path gives the SQLite store, with no PostgreSQL involved."""
    store = open_tenant_store(str(tmp_path / "t.db"), "node-a", listen=True)
    assert isinstance(store, SQLiteTenantStore)


def test_the_factory_opens_postgresql_for_a_url(bgservice_postgres_dsn: str) -> None:
    """A postgresql:// URL gives the PostgreSQL store."""
    store = open_tenant_store(bgservice_postgres_dsn, "node-a")
    try:
        assert isinstance(store, PostgresTenantStore)
        assert store.add_tenant("acme") is True
    finally:
        assert isinstance(store, PostgresTenantStore)
        store.close()


def test_importing_the_core_never_imports_psycopg() -> None:
    """psycopg is optional: the package and this module load without it."""
    code = (
        "import sys, bgservice_core, bgservice_core._cli, "
        "bgservice_core.tenants_postgres; "
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_a_missing_driver_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without psycopg the error names the extra that brings it."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(TenantError) as info:
        open_tenant_store(CLOSED_PORT_DSN, "node-a")
    assert str(info.value).startswith("a PostgreSQL tenant database needs")
    assert "pip install 'bgservice-core[postgres]'" in str(info.value)


# -- SQLite's semantics -------------------------------------------------------


def test_adding_a_tenant_twice_keeps_the_first(
    store: PostgresTenantStore,
) -> None:
    """add_tenant says whether it added; an existing tenant is left alone."""
    assert store.add_tenant("acme") is True
    store.set_gate("acme", True, 402, "credit_exhausted")
    assert store.add_tenant("acme") is False
    assert store.get("acme").suspended is True


def test_engaging_and_releasing_write_the_whole_row(
    store: PostgresTenantStore,
) -> None:
    """A suspension stores status and reason; a release clears both."""
    store.add_tenant("acme")
    store.set_gate("acme", True, 402, "credit_exhausted")
    engaged = store.get("acme")
    assert (engaged.suspended, engaged.deny_status, engaged.deny_reason) == (
        True,
        402,
        "credit_exhausted",
    )
    assert engaged.changed_by == "node-a"

    store.set_gate("acme", False, 402, "credit_exhausted")
    released = store.get("acme")
    assert (released.suspended, released.deny_status, released.deny_reason) == (
        False,
        None,
        "",
    )
    assert released.changed_at >= engaged.changed_at


def test_tenants_are_listed_by_slug(store: PostgresTenantStore) -> None:
    """tenants() returns every row, sorted by slug."""
    for slug in ("globex", "acme", "initech"):
        store.add_tenant(slug)
    slugs = [tenant.slug for tenant in store.tenants()]
    assert slugs == ["acme", "globex", "initech"]


@pytest.mark.parametrize(
    ("slug", "suspended", "status", "reason"),
    [
        ("Not A Slug", True, 402, "credit_exhausted"),
        ("acme", "yes", 402, "credit_exhausted"),
        ("acme", True, 200, "credit_exhausted"),
        ("acme", True, "402", "credit_exhausted"),
        ("acme", True, 402, "  "),
        ("ghost", True, 402, "credit_exhausted"),
    ],
)
def test_a_refused_change_is_refused_as_sqlite_refuses_it(
    store: PostgresTenantStore,
    tmp_path: Path,
    slug: str,
    suspended: Any,
    status: Any,
    reason: str,
) -> None:
    """Bad input raises the same error class and message as in SQLite."""
    sqlite = SQLiteTenantStore(tmp_path / "t.db", "node-a")
    for each in (sqlite, store):
        each.add_tenant("acme")

    with pytest.raises(TenantError) as expected:
        sqlite.set_gate(slug, suspended, status, reason)
    with pytest.raises(TenantError) as got:
        store.set_gate(slug, suspended, status, reason)
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)
    assert store.get("acme").suspended is False


def test_an_unknown_tenant_is_named(store: PostgresTenantStore) -> None:
    """get() and set_gate() of a missing slug raise UnknownTenantError."""
    with pytest.raises(UnknownTenantError, match="no tenant with slug 'ghost'"):
        store.get("ghost")


# -- two nodes ----------------------------------------------------------------


def test_a_change_waits_for_another_nodes_row_lock(bgservice_postgres_dsn: str) -> None:
    """set_gate waits for a row another transaction locked, then writes."""
    with (
        PostgresTenantStore(bgservice_postgres_dsn, "node-a") as node_a,
        _connect(bgservice_postgres_dsn) as holder,
        _connect(bgservice_postgres_dsn) as observer,
    ):
        node_a.add_tenant("acme")
        holder.execute("BEGIN")
        holder.execute("SELECT * FROM tenants WHERE slug = 'acme' FOR UPDATE")

        writer = threading.Thread(
            target=node_a.set_gate, args=("acme", True, 402, "credit_exhausted")
        )
        writer.start()

        def node_a_waits_for_the_lock() -> bool:
            """node-a's UPDATE waits on the row lock."""
            row = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                " 'Lock' AND query LIKE %s",
                ("%FOR UPDATE%",),
            ).fetchone()
            return bool(row and row[0] == 1)

        wait_until(node_a_waits_for_the_lock)
        holder.execute(
            "UPDATE tenants SET suspended = TRUE, deny_status = 403,"
            " deny_reason = 'abuse', changed_by = 'node-b' WHERE slug = 'acme'"
        )
        holder.execute("COMMIT")
        writer.join(timeout=30)

        final = node_a.get("acme")
        assert not writer.is_alive()
        assert (final.deny_status, final.deny_reason, final.changed_by) == (
            402,
            "credit_exhausted",
            "node-a",
        )


def test_two_nodes_racing_on_one_tenant_lose_no_change(
    bgservice_postgres_dsn: str,
) -> None:
    """Every concurrent change commits, is announced, leaves a whole row."""
    changes_per_node = 25
    reloaded: list[Tenant] = []
    with (
        PostgresTenantStore(bgservice_postgres_dsn, "node-a") as node_a,
        PostgresTenantStore(bgservice_postgres_dsn, "node-b") as node_b,
        PostgresTenantStore(
            bgservice_postgres_dsn, "watcher", listen=True, on_reload=reloaded.append
        ),
    ):
        node_a.add_tenant("acme")
        wait_until(lambda: len(reloaded) == 1)
        writes = {node_a: (402, "credit_exhausted"), node_b: (403, "abuse")}

        def hammer(node: PostgresTenantStore) -> None:
            status, reason = writes[node]
            for index in range(changes_per_node):
                node.set_gate("acme", index % 2 == 0, status, reason)

        threads = [threading.Thread(target=hammer, args=(n,)) for n in writes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        def every_change_was_announced() -> bool:
            """The watcher reloaded the tenant once per committed change."""
            return len(reloaded) == 1 + 2 * changes_per_node

        wait_until(every_change_was_announced)
        final = node_a.get("acme")
        writer = node_a if final.changed_by == "node-a" else node_b
        # Each node's last change engages: its last index, 24, is even.
        assert final.suspended is True
        assert (final.deny_status, final.deny_reason) == writes[writer]


# -- the change feed ----------------------------------------------------------


def test_a_listening_store_reloads_what_another_node_changed(
    bgservice_postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The change is reloaded and logged, naming the node that made it."""
    caplog.set_level(logging.INFO, logger="bgservice.tenants")
    reloaded: list[Tenant] = []
    with (
        PostgresTenantStore(
            bgservice_postgres_dsn, "node-a", listen=True, on_reload=reloaded.append
        ) as node_a,
        PostgresTenantStore(bgservice_postgres_dsn, "node-b") as node_b,
    ):
        node_a.add_tenant("acme")
        node_a.set_gate("acme", True, 403, "abuse")
        node_b.set_gate("acme", True, 402, "credit_exhausted")
        wait_until(lambda: len(reloaded) == 1)

    assert reloaded[0].changed_by == "node-b"
    assert reloaded[0].deny_reason == "credit_exhausted"
    assert (
        "reloaded tenant 'acme' after a change by node 'node-b': suspended "
        "(402 credit_exhausted)"
    ) in caplog.messages


def test_the_feed_comes_back_after_the_connection_is_lost(
    bgservice_postgres_dsn: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dropped listening connection is reopened; every tenant reloaded."""
    monkeypatch.setattr(tenants_postgres, "RELISTEN_SECONDS", 0.05)
    caplog.set_level(logging.INFO, logger="bgservice.tenants")
    reloaded: list[Tenant] = []
    with (
        PostgresTenantStore(
            bgservice_postgres_dsn, "node-a", listen=True, on_reload=reloaded.append
        ),
        PostgresTenantStore(bgservice_postgres_dsn, "node-b") as node_b,
        _connect(bgservice_postgres_dsn) as admin,
    ):
        node_b.add_tenant("acme")
        wait_until(lambda: len(reloaded) == 1)
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN%%'"
        )
        wait_until(lambda: len(reloaded) == 2)  # the reload of every tenant

        node_b.set_gate("acme", True, 402, "credit_exhausted")
        wait_until(lambda: len(reloaded) == 3)

    assert reloaded[-1].suspended is True
    assert any("lost the tenant change feed" in m for m in caplog.messages)
    assert "tenant change feed back; reloading every tenant" in caplog.messages


# -- passwords ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            f"postgresql://bob:{SECRET}@db.example:5432/app",
            "postgresql://bob:***@db.example:5432/app",
        ),
        (
            "postgresql://bob:p%40ss%2Fword@db.example/app",
            "postgresql://bob:***@db.example/app",
        ),
        (
            "postgres://bob:pa@ss@db.example/app",
            "postgres://bob:***@db.example/app",
        ),
        (
            f"postgresql://db.example/app?sslmode=require&password={SECRET}",
            "postgresql://db.example/app?sslmode=require&password=***",
        ),
        (
            f"host=db.example password={SECRET} user=bob",
            "host=db.example password=*** user=bob",
        ),
        ("postgresql://bob@db.example/app", "postgresql://bob@db.example/app"),
        ("/var/lib/bgservice/bgservice.db", "/var/lib/bgservice/bgservice.db"),
    ],
)
def test_a_dsn_is_shown_without_its_password(dsn: str, shown: str) -> None:
    """redact_dsn hides the password in every spelling a DSN may carry it."""
    assert redact_dsn(dsn) == shown


def test_secrets_are_scrubbed_from_any_text() -> None:
    """The DSN and its password, percent-decoded too, vanish from a message."""
    dsn = "postgresql://bob:p%40ss@db.example/app"
    text = f"cannot parse {dsn}: bad token 'p%40ss', meaning 'p@ss'"
    assert redact_secrets(text, dsn) == (
        "cannot parse postgresql://bob:***@db.example/app: bad token '***', "
        "meaning '***'"
    )


@pytest.mark.parametrize(
    "dsn",
    [
        CLOSED_PORT_DSN,
        # libpq quotes a malformed percent-encoding, password and all.
        f"postgresql://bob:{SECRET}%zz@127.0.0.1:1/nowhere",
        f"postgresql://bob:{SECRET}@127.0.0.1:notaport/nowhere",
    ],
)
def test_an_unusable_database_is_reported_without_the_password(
    dsn: str,
) -> None:
    """The error names the database and the driver's reason, no password."""
    with pytest.raises(TenantError) as info:
        PostgresTenantStore(dsn, "node-a")

    message = str(info.value)
    assert message.startswith("cannot use 'postgresql://bob:***@127.0.0.1:")
    assert SECRET not in message
    # Raised from None: a logged traceback cannot show the driver's raw text.
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_a_wrong_password_is_reported_without_it(bgservice_postgres_dsn: str) -> None:
    """The server's refusal is quoted; the password tried is not."""
    wrong = bgservice_postgres_dsn.replace("@", f"{SECRET}@", 1)
    refused = "password authentication failed"
    with pytest.raises(TenantError, match=refused) as info:
        PostgresTenantStore(wrong, "node-a")
    assert SECRET not in str(info.value)


# -- the command line ---------------------------------------------------------


def test_the_tenants_command_works_on_postgresql(bgservice_postgres_dsn: str) -> None:
    """bgservice tenants --db postgresql://... adds and lists tenants."""
    runner = CliRunner()
    tenants = ["tenants", "--db", bgservice_postgres_dsn]
    added = runner.invoke(main, [*tenants, "add", "acme"])
    listed = runner.invoke(main, [*tenants, "--json"])

    assert (added.exit_code, added.output) == (0, "added: acme\n")
    assert listed.exit_code == 0, listed.output
    assert '"slug": "acme"' in listed.output


def test_the_tenants_command_hides_the_password(bgservice_postgres_dsn: str) -> None:
    """An empty listing and an unreachable database print no password."""
    runner = CliRunner()
    empty = runner.invoke(main, ["tenants", "--db", bgservice_postgres_dsn])
    unreachable = runner.invoke(main, ["tenants", "--db", CLOSED_PORT_DSN])

    password = bgservice_postgres_dsn.split(":")[2].split("@")[0]
    assert empty.exit_code == 0
    assert "no tenants in postgresql://bgservice:***@" in empty.output
    assert password not in empty.output
    assert unreachable.exit_code == 1
    assert "cannot use 'postgresql://bob:***@127.0.0.1:1/nowhere'" in (
        unreachable.output
    )
    assert SECRET not in unreachable.output
