"""The reference chassis' tenant store: validation, round trips and concurrency."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bgservice_core import BGServiceError, Gate, tenants
from bgservice_core.tenants import (
    SQLiteTenantStore,
    Tenant,
    TenantError,
    UnknownTenantError,
)
from tests.files import read_only

NODE_A = "node-a.test.example"
NODE_B = "node-b.test.example"

INVALID_SLUG = (
    "invalid tenant slug {!r}: use 1 to 63 lowercase letters, digits and inner "
    "hyphens, such as 'acme-corp'"
)
STATUS_TYPE = "invalid deny status {!r}: use an HTTP status from 400 to 599"
STATUS_RANGE = (
    "invalid deny status {}: a denied request needs an HTTP error status from 400 "
    "to 599, such as 402 or 403"
)
NO_REASON = (
    "a suspension needs a deny reason, such as 'credit_exhausted', so operators "
    "can tell why the tenant is denied"
)
FLAG_TYPE = (
    "invalid suspended flag {!r}: use True to suspend the tenant or False to readmit it"
)
UNUSABLE = (
    "cannot use {!r} as the tenant database: {}; point --db or BGSERVICE_DB at a "
    "writable SQLite file"
)

# Every change to a tenant row is copied here in commit order, so that a test
# can prove no update was lost and changed_at never went backwards.
AUDIT_SQL = """
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug, suspended, deny_status, deny_reason, changed_at, changed_by
);
CREATE TRIGGER audit_changes AFTER UPDATE ON tenants BEGIN
    INSERT INTO audit (slug, suspended, deny_status, deny_reason, changed_at,
                       changed_by)
    VALUES (NEW.slug, NEW.suspended, NEW.deny_status, NEW.deny_reason,
            NEW.changed_at, NEW.changed_by);
END;
"""

# Toggles one tenant many times from a process of its own; started twice at once.
TOGGLER = """
import sys, time
from pathlib import Path
from bgservice_core.tenants import SQLiteTenantStore

database, toggles, go, node = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
store = SQLiteTenantStore(database, node_id=node)
deadline = time.monotonic() + 60
while not Path(go).exists() and time.monotonic() < deadline:
    time.sleep(0.005)
for number in range(toggles):
    store.set_gate("acme", number % 2 == 0, 402, f"{node}-{number}")
    store.get("acme")
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """Where a test's tenant database lives."""
    return tmp_path / "tenants.db"


@pytest.fixture
def store(database: Path) -> SQLiteTenantStore:
    """A store written by node A, holding the admitted tenant 'acme'."""
    tenant_store = SQLiteTenantStore(database, node_id=NODE_A)
    tenant_store.add_tenant("acme")
    return tenant_store


@contextlib.contextmanager
def connected(database: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection that commits only when told to."""
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def raw_row(database: Path, slug: str = "acme") -> tuple[Any, ...] | None:
    """The row exactly as stored: each column as an SQL literal, types included."""
    with connected(database) as connection:
        row: tuple[Any, ...] | None = connection.execute(
            "SELECT quote(slug), quote(suspended), quote(deny_status),"
            " quote(deny_reason), quote(changed_at), quote(changed_by)"
            " FROM tenants WHERE slug = ?",
            (slug,),
        ).fetchone()
    return row


def audit_rows(database: Path) -> list[tuple[Any, ...]]:
    """Every committed change, in commit order."""
    with connected(database) as connection:
        return connection.execute(
            "SELECT slug, suspended, deny_status, deny_reason, changed_at, changed_by"
            " FROM audit ORDER BY id"
        ).fetchall()


def assert_consistent(row: tuple[Any, ...]) -> None:
    """A suspended row carries a status and reason; an admitted one carries none."""
    _, suspended, deny_status, deny_reason, _, _ = row
    if suspended:
        assert deny_status == 402
        assert deny_reason
    else:
        assert (deny_status, deny_reason) == (None, "")


# -- the basics ----------------------------------------------------------------


def test_store_is_a_gate(store: SQLiteTenantStore) -> None:
    """The store satisfies the Gate protocol that services are handed."""
    assert isinstance(store, Gate)


def test_add_tenant_reports_whether_it_was_new(store: SQLiteTenantStore) -> None:
    """add_tenant() is True for a new slug; for a known one False, changing nothing."""
    before = raw_row(store.path)

    assert store.add_tenant("globex") is True
    assert store.add_tenant("acme") is False
    assert raw_row(store.path) == before


def test_new_tenant_is_admitted_and_attributed(store: SQLiteTenantStore) -> None:
    """A new tenant is admitted, with no denial, and credited to the adding node."""
    tenant = store.get("acme")

    assert (tenant.slug, tenant.suspended, tenant.deny_status, tenant.deny_reason) == (
        "acme",
        False,
        None,
        "",
    )
    assert tenant.changed_by == NODE_A
    assert tenant.changed_at.endswith("+00:00")


def test_tenants_are_listed_by_slug(store: SQLiteTenantStore) -> None:
    """tenants() returns every tenant, sorted by slug."""
    for slug in ("zeta", "beta-2", "beta"):
        store.add_tenant(slug)

    assert [tenant.slug for tenant in store.tenants()] == [
        "acme",
        "beta",
        "beta-2",
        "zeta",
    ]


def test_empty_store_lists_nothing(database: Path) -> None:
    """A fresh store has the table and no tenants."""
    assert SQLiteTenantStore(database, node_id=NODE_A).tenants() == []


def test_get_unknown_tenant(store: SQLiteTenantStore) -> None:
    """get() of a slug nobody added names the slug and how to add it."""
    with pytest.raises(UnknownTenantError) as caught:
        store.get("globex")

    assert str(caught.value) == (
        "no tenant with slug 'globex'; add it first (bgservice tenants add globex)"
    )
    assert caught.value.slug == "globex"


def test_database_uses_wal(store: SQLiteTenantStore) -> None:
    """The file is in WAL mode, so readers and the writer do not block each other."""
    with connected(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_store_reopens_existing_database(store: SQLiteTenantStore) -> None:
    """A second store on the same file sees the tenants the first one added."""
    other = SQLiteTenantStore(store.path, node_id=NODE_B)

    assert [tenant.slug for tenant in other.tenants()] == ["acme"]


# -- engage and release ----------------------------------------------------------


def test_engage_then_release_round_trip(database: Path) -> None:
    """A suspension is stored with its denial and node; a release clears both."""
    SQLiteTenantStore(database, node_id=NODE_A).add_tenant("acme")
    engaging = SQLiteTenantStore(database, node_id=NODE_A)
    releasing = SQLiteTenantStore(database, node_id=NODE_B)

    engaging.set_gate("acme", True, 402, "credit_exhausted")
    engaged = engaging.get("acme")
    releasing.set_gate("acme", False, 402, "credit_exhausted")
    released = releasing.get("acme")

    assert engaged == Tenant(
        "acme", True, 402, "credit_exhausted", engaged.changed_at, NODE_A
    )
    assert released == Tenant("acme", False, None, "", released.changed_at, NODE_B)
    assert released.changed_at >= engaged.changed_at


def test_release_ignores_status_and_reason(store: SQLiteTenantStore) -> None:
    """A release may pass any integer status and no reason: both are cleared."""
    store.set_gate("acme", True, 403, "abuse")
    store.set_gate("acme", False, 0, "")

    tenant = store.get("acme")
    assert (tenant.suspended, tenant.deny_status, tenant.deny_reason) == (
        False,
        None,
        "",
    )


def test_changed_at_never_goes_backwards(store: SQLiteTenantStore) -> None:
    """A node whose clock is behind the last change's author keeps its time stamp."""
    ahead = "2999-01-01T00:00:00.000+00:00"
    with connected(store.path) as connection:
        connection.execute("UPDATE tenants SET changed_at = ?", (ahead,))

    store.set_gate("acme", True, 402, "credit_exhausted")

    assert store.get("acme").changed_at == ahead
    assert store.get("acme").suspended is True


# -- refusals change nothing -------------------------------------------------------


def _refusals() -> list[Any]:
    """(slug, suspended, status, reason, error type, message) per refused call."""
    cases: list[Any] = [
        ("globex", True, 402, "why", UnknownTenantError, None),
        ("globex", False, 402, "", UnknownTenantError, None),
        ("acme", True, 402, "", TenantError, NO_REASON),
        ("acme", True, 402, "   ", TenantError, NO_REASON),
        ("acme", True, 402, None, TenantError, NO_REASON),
        ("acme", "yes", 402, "why", TenantError, FLAG_TYPE.format("yes")),
        ("acme", 1, 402, "why", TenantError, FLAG_TYPE.format(1)),
        ("acme", False, True, "", TenantError, STATUS_TYPE.format(True)),
        ("acme", False, "402", "", TenantError, STATUS_TYPE.format("402")),
    ]
    for status in (399, 600, 200, -1, 0):
        cases.append(
            ("acme", True, status, "why", TenantError, STATUS_RANGE.format(status))
        )
    for wrong in (True, False, "402", 402.0, None):
        cases.append(
            ("acme", True, wrong, "why", TenantError, STATUS_TYPE.format(wrong))
        )
    for slug in ("Acme", "acme_corp", "-acme", "acme-", "", "a" * 64, "acme\n", 7):
        cases.append((slug, True, 402, "why", TenantError, INVALID_SLUG.format(slug)))
    return [pytest.param(*case, id=repr(case[:4])) for case in cases]


@pytest.mark.parametrize(
    ("slug", "suspended", "status", "reason", "error", "message"), _refusals()
)
def test_refused_change_leaves_row_untouched(
    store: SQLiteTenantStore,
    slug: Any,
    suspended: Any,
    status: Any,
    reason: Any,
    error: type[TenantError],
    message: str | None,
) -> None:
    """A refused set_gate raises a clear TenantError and changes no byte of the row."""
    store.set_gate("acme", True, 402, "credit_exhausted")
    before = raw_row(store.path)
    refusing = SQLiteTenantStore(store.path, node_id=NODE_B)

    with pytest.raises(error) as caught:
        refusing.set_gate(slug, suspended, status, reason)

    assert isinstance(caught.value, BGServiceError)
    if message is not None:
        assert str(caught.value) == message
    else:
        assert str(caught.value) == (
            f"no tenant with slug {slug!r}; add it first (bgservice tenants add {slug})"
        )
    assert raw_row(store.path) == before
    assert raw_row(store.path, "globex") is None


@pytest.mark.parametrize("slug", ["Acme", "acme corp", "", "a" * 64])
def test_add_tenant_refuses_malformed_slug(store: SQLiteTenantStore, slug: str) -> None:
    """add_tenant() refuses a malformed slug and stores nothing."""
    with pytest.raises(TenantError) as caught:
        store.add_tenant(slug)

    assert str(caught.value) == INVALID_SLUG.format(slug)
    assert [tenant.slug for tenant in store.tenants()] == ["acme"]


def test_longest_slug_is_accepted(store: SQLiteTenantStore) -> None:
    """A 63-character slug, the DNS label limit, is valid."""
    assert store.add_tenant("a" * 63) is True


# -- locking and concurrency ---------------------------------------------------------


def test_reads_do_not_wait_for_a_writer(store: SQLiteTenantStore) -> None:
    """While another connection holds the write lock, reads see the committed row."""
    with connected(store.path) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE tenants SET suspended = 1, deny_status = 402")

        tenant = store.get("acme")
        listed = store.tenants()
        writer.execute("ROLLBACK")

    assert tenant.suspended is False
    assert listed == [tenant]


def test_writer_waits_for_the_lock(store: SQLiteTenantStore) -> None:
    """set_gate waits for another writer's transaction instead of failing."""
    outcome: list[BaseException | None] = []

    def suspend() -> None:
        try:
            store.set_gate("acme", True, 402, "credit_exhausted")
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            outcome.append(err)
        else:
            outcome.append(None)

    with connected(store.path) as holder:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE tenants SET changed_by = 'holder'")
        waiter = threading.Thread(target=suspend)
        waiter.start()
        waiter.join(timeout=0.2)
        holder.execute("COMMIT")
    waiter.join(timeout=30)

    assert outcome == [None]
    assert store.get("acme").suspended is True
    assert store.get("acme").changed_by == NODE_A


def _toggle(store: SQLiteTenantStore, prefix: str, toggles: int) -> Callable[[], None]:
    def run() -> None:
        for number in range(toggles):
            store.set_gate("acme", number % 2 == 0, 402, f"{prefix}-{number}")
            store.get("acme")

    return run


def test_threads_lose_no_update(store: SQLiteTenantStore) -> None:
    """Threads changing one tenant at once each get every change committed."""
    with connected(store.path) as connection:
        connection.executescript(AUDIT_SQL)
    errors: list[BaseException] = []
    threads_count, toggles = 4, 40

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as err:  # noqa: BLE001 - handed to the test thread
                errors.append(err)

        return run

    threads = [
        threading.Thread(target=guarded(_toggle(store, f"t{index}", toggles)))
        for index in range(threads_count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    _assert_history(store, expected_changes=threads_count * toggles)


def test_two_processes_lose_no_update(store: SQLiteTenantStore, tmp_path: Path) -> None:
    """Two processes toggling one tenant commit every change, in time order."""
    with connected(store.path) as connection:
        connection.executescript(AUDIT_SQL)
    go = tmp_path / "go"
    toggles = 60
    script = [sys.executable, "-c", textwrap.dedent(TOGGLER)]
    arguments = [str(store.path), str(toggles), str(go)]

    processes = [
        subprocess.Popen(
            [*script, *arguments, node],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in (NODE_A, NODE_B)
    ]
    go.touch()
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    assert [stderr for _, stderr in outputs] == ["", ""]
    history = _assert_history(store, expected_changes=2 * toggles)
    assert {row[5] for row in history} == {NODE_A, NODE_B}


def _assert_history(
    store: SQLiteTenantStore, *, expected_changes: int
) -> list[tuple[Any, ...]]:
    """Check the audit trail: complete, consistent, ordered, ending in the row."""
    history = audit_rows(store.path)
    final = store.get("acme")

    assert len(history) == expected_changes
    for row in history:
        assert_consistent(row)
    stamps = [row[4] for row in history]
    assert stamps == sorted(stamps)
    assert history[-1] == (
        final.slug,
        int(final.suspended),
        final.deny_status,
        final.deny_reason,
        final.changed_at,
        final.changed_by,
    )
    return history


# -- unusable databases ------------------------------------------------------------


def test_directory_is_refused(tmp_path: Path) -> None:
    """A directory given as the database says so and how to fix it."""
    with pytest.raises(TenantError) as caught:
        SQLiteTenantStore(tmp_path, node_id=NODE_A)

    assert str(caught.value) == UNUSABLE.format(str(tmp_path), "it is a directory")


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    """A file in a directory that does not exist cannot be created."""
    path = tmp_path / "missing" / "tenants.db"

    with pytest.raises(TenantError) as caught:
        SQLiteTenantStore(path, node_id=NODE_A)

    assert str(caught.value) == UNUSABLE.format(
        str(path), "unable to open database file"
    )
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert not path.parent.exists()


def test_location_below_a_file_is_refused(tmp_path: Path) -> None:
    """A path whose parent is a regular file is an unwritable location."""
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a directory\n")
    path = blocker / "tenants.db"

    with pytest.raises(TenantError) as caught:
        SQLiteTenantStore(path, node_id=NODE_A)

    assert str(caught.value) == UNUSABLE.format(
        str(path), "unable to open database file"
    )


def test_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    """An existing file of another kind is refused and left as it was."""
    path = tmp_path / "notes.txt"
    path.write_text("some notes, not SQLite\n" * 100)

    with pytest.raises(TenantError) as caught:
        SQLiteTenantStore(path, node_id=NODE_A)

    assert str(caught.value) == UNUSABLE.format(str(path), "file is not a database")
    assert path.read_text() == "some notes, not SQLite\n" * 100


@pytest.mark.parametrize("path", [":memory:", ""])
def test_non_file_database_is_refused(path: str) -> None:
    """An in-memory database would forget every change, so it is refused."""
    with pytest.raises(TenantError) as caught:
        SQLiteTenantStore(path, node_id=NODE_A)

    assert str(caught.value) == UNUSABLE.format(path, "it is not a file")


def test_read_only_database_is_refused_when_the_store_opens(database: Path) -> None:
    """A read-only file fails at start-up, not at a running chassis' first change."""
    SQLiteTenantStore(database, node_id=NODE_A).add_tenant("acme")

    with read_only(database), pytest.raises(TenantError) as caught:
        SQLiteTenantStore(database, node_id=NODE_A)

    assert str(caught.value) == UNUSABLE.format(
        str(database),
        "the file is read-only; make it writable for this user (SQLite says: "
        "attempt to write a readonly database)",
    )


def test_read_only_database_refuses_add_with_advice(
    store: SQLiteTenantStore, database: Path
) -> None:
    """Adding to a read-only file raises a TenantError saying to make it writable."""
    with read_only(database), pytest.raises(TenantError) as caught:
        store.add_tenant("globex")

    assert str(caught.value) == UNUSABLE.format(
        str(database),
        "the file is read-only; make it writable for this user (SQLite says: "
        "attempt to write a readonly database)",
    )
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert [tenant.slug for tenant in store.tenants()] == ["acme"]


def test_locked_database_says_retry(
    store: SQLiteTenantStore, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write blocked by another process's lock says to retry, not a raw error."""
    monkeypatch.setattr(tenants, "BUSY_TIMEOUT_SECONDS", 0.05)

    with connected(database) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(TenantError) as caught:
            store.set_gate("acme", True, 402, "credit_exhausted")
        holder.execute("ROLLBACK")

    assert str(caught.value) == UNUSABLE.format(
        str(database),
        "another process holds it locked; retry when it has finished (SQLite "
        "says: database is locked)",
    )
    assert store.get("acme").suspended is False


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            "host=127.0.0.1 port=1 password=SEKRIT11",
            "host=127.0.0.1 port=1 password=***",
        ),
        ("dbname=tenants user=chassis", "dbname=tenants user=chassis"),
    ],
)
def test_libpq_keyword_string_is_refused(
    dsn: str, shown: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key=value connection string asks for a URL and creates no file."""
    monkeypatch.chdir(tmp_path)

    with pytest.raises(TenantError) as caught:
        SQLiteTenantStore(dsn, node_id=NODE_A)

    assert str(caught.value) == (
        f"cannot use {shown!r} as the tenant database: it is a key=value "
        "connection string; write a postgresql:// URL instead, such as "
        "postgresql://user:password@host:5432/dbname"
    )
    assert "SEKRIT11" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
