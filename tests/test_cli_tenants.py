"""``bgservice tenants``: listing and adding tenants in the reference chassis' store."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bgservice_core._cli import main
from bgservice_core.tenants import SQLiteTenantStore
from tests.files import read_only

NODE = "node-a.test.example"
STAMP = "2025-01-02T03:04:05.678+00:00"


@pytest.fixture(autouse=True)
def _no_inherited_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a BGSERVICE_DB exported by the shell out of these tests."""
    monkeypatch.delenv("BGSERVICE_DB", raising=False)


@pytest.fixture
def runner() -> CliRunner:
    """A CLI runner that keeps stdout and stderr apart."""
    return CliRunner()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """Where a test's tenant database lives."""
    return tmp_path / "tenants.db"


def invoke(
    runner: CliRunner, *arguments: str, env: dict[str, str] | None = None
) -> Result:
    """Run ``bgservice`` with ``arguments``, letting unexpected exceptions through."""
    return runner.invoke(
        main, list(arguments), env=env, prog_name="bgservice", catch_exceptions=False
    )


def stored_slugs(database: Path) -> list[str]:
    """The slugs in the store at ``database``, sorted."""
    return [tenant.slug for tenant in SQLiteTenantStore(database, NODE).tenants()]


def seed(database: Path) -> None:
    """Store 'acme' (suspended) and 'globex', both stamped with a fixed time."""
    store = SQLiteTenantStore(database, node_id=NODE)
    store.add_tenant("globex")
    store.add_tenant("acme")
    store.set_gate("acme", True, 402, "credit_exhausted")
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("UPDATE tenants SET changed_at = ?", (STAMP,))
    connection.close()


# -- listing -------------------------------------------------------------------


def test_empty_store_says_how_to_add(runner: CliRunner, database: Path) -> None:
    """An empty store names the database and repeats the --db it was given."""
    SQLiteTenantStore(database, NODE)

    result = invoke(runner, "tenants", "--db", str(database))

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"no tenants in {database}; add one with: "
        f"bgservice tenants --db {database} add SLUG"
    ]
    assert result.stderr == ""


def test_empty_store_from_environment(runner: CliRunner, database: Path) -> None:
    """With BGSERVICE_DB set, the hint needs no --db: the variable still applies."""
    SQLiteTenantStore(database, NODE)

    result = invoke(runner, "tenants", env={"BGSERVICE_DB": str(database)})

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"no tenants in {database}; add one with: bgservice tenants add SLUG"
    ]
    assert database.exists()


def test_default_database_is_in_working_directory(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --db or BGSERVICE_DB the store is bgservice.db in the current folder."""
    monkeypatch.chdir(tmp_path)
    SQLiteTenantStore(tmp_path / "bgservice.db", NODE).add_tenant("acme")

    result = invoke(runner, "tenants", "--json")

    assert result.exit_code == 0
    assert [row["slug"] for row in json.loads(result.stdout)] == ["acme"]


def test_table_lists_every_tenant(runner: CliRunner, database: Path) -> None:
    """The table has one row per tenant, sorted by slug, with every column."""
    seed(database)

    result = invoke(runner, "tenants", "--db", str(database))

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "slug    suspended      deny status  deny reason       changed at"
        "                     changed by",
        "------  -----------  -------------  ----------------  "
        "-----------------------------  -------------------",
        f"acme    True                   402  credit_exhausted  {STAMP}  {NODE}",
        f"globex  False                                         {STAMP}  {NODE}",
    ]


def test_json_lists_every_tenant(runner: CliRunner, database: Path) -> None:
    """--json prints an indented array with one object per tenant."""
    seed(database)

    result = invoke(runner, "tenants", "--db", str(database), "--json")

    expected = [
        {
            "slug": "acme",
            "suspended": True,
            "deny_status": 402,
            "deny_reason": "credit_exhausted",
            "changed_at": STAMP,
            "changed_by": NODE,
        },
        {
            "slug": "globex",
            "suspended": False,
            "deny_status": None,
            "deny_reason": "",
            "changed_at": STAMP,
            "changed_by": NODE,
        },
    ]
    assert result.exit_code == 0
    assert result.stdout == json.dumps(expected, indent=2) + "\n"


def test_json_of_empty_store_is_empty_array(runner: CliRunner, database: Path) -> None:
    """--json on an empty store prints [] and no hint, so scripts can parse it."""
    SQLiteTenantStore(database, NODE)

    result = invoke(runner, "tenants", "--db", str(database), "--json")

    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["[]"]


def test_db_option_beats_environment(
    runner: CliRunner, database: Path, tmp_path: Path
) -> None:
    """--db wins over BGSERVICE_DB."""
    seed(database)
    other = tmp_path / "other.db"
    SQLiteTenantStore(other, NODE)

    result = invoke(
        runner, "tenants", "--db", str(other), env={"BGSERVICE_DB": str(database)}
    )

    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith(f"no tenants in {other};")


# -- adding ----------------------------------------------------------------------


def test_add_reports_added_and_existing(runner: CliRunner, database: Path) -> None:
    """Each slug gets one line: added, or exists when it was there already."""
    result = invoke(
        runner, "tenants", "--db", str(database), "add", "acme", "globex", "acme"
    )

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "added: acme",
        "added: globex",
        "exists: acme",
    ]
    assert stored_slugs(database) == ["acme", "globex"]


def test_add_records_this_host(runner: CliRunner, database: Path) -> None:
    """Tenants added from the command line are credited to this host's FQDN."""
    invoke(runner, "tenants", "--db", str(database), "add", "acme")

    tenant = SQLiteTenantStore(database, NODE).get("acme")
    assert (tenant.suspended, tenant.changed_by) == (False, socket.getfqdn())


def test_add_accepts_db_after_the_subcommand(runner: CliRunner, database: Path) -> None:
    """--db may follow 'add' as well as precede it."""
    result = invoke(runner, "tenants", "add", "acme", "--db", str(database))

    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["added: acme"]
    assert stored_slugs(database) == ["acme"]


def test_add_honours_environment(runner: CliRunner, database: Path) -> None:
    """BGSERVICE_DB chooses the store 'add' writes to."""
    result = invoke(
        runner, "tenants", "add", "acme", env={"BGSERVICE_DB": str(database)}
    )

    assert result.exit_code == 0
    assert stored_slugs(database) == ["acme"]


def test_add_invalid_slug_is_usage_error(runner: CliRunner, database: Path) -> None:
    """A malformed slug exits 2, quotes the slug, and adds none of the others."""
    result = invoke(
        runner, "tenants", "--db", str(database), "add", "zed", "Bad_Slug", "yy"
    )

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Usage: bgservice tenants add [OPTIONS] SLUGS...",
        "Try 'bgservice tenants add --help' for help.",
        "",
        "Error: Invalid value for SLUGS: invalid tenant slug 'Bad_Slug': use 1 to "
        "63 lowercase letters, digits and inner hyphens, such as 'acme-corp'",
    ]
    assert not database.exists()


def test_add_without_slugs_is_usage_error(runner: CliRunner, database: Path) -> None:
    """'add' with nothing to add exits 2 and names the missing argument."""
    result = invoke(runner, "tenants", "--db", str(database), "add")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: Missing argument 'SLUGS...'."


# -- unusable databases --------------------------------------------------------------


def test_unopenable_database_says_how_to_fix(runner: CliRunner, tmp_path: Path) -> None:
    """A database in a missing directory exits 1 pointing at --db and BGSERVICE_DB."""
    path = tmp_path / "missing" / "tenants.db"

    result = invoke(runner, "tenants", "--db", str(path), "add", "acme")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: cannot use {str(path)!r} as the tenant database: unable to open "
        "database file; point --db or BGSERVICE_DB at a writable SQLite file"
    ]


def test_directory_as_database_is_usage_error(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A directory given to --db is refused by the option itself, exit 2."""
    result = invoke(runner, "tenants", "--db", str(tmp_path))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: Invalid value for '--db': File {str(tmp_path)!r} is a directory."
    )


def test_add_to_read_only_database_says_how_to_fix(
    runner: CliRunner, database: Path
) -> None:
    """A read-only file exits 1 with advice instead of a SQLite traceback."""
    seed(database)

    with read_only(database):
        result = runner.invoke(
            main, ["tenants", "--db", str(database), "add", "zz"], prog_name="bgservice"
        )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: cannot use {str(database)!r} as the tenant database: the file is "
        "read-only; make it writable for this user (SQLite says: attempt to write "
        "a readonly database); point --db or BGSERVICE_DB at a writable SQLite file"
    ]
    assert stored_slugs(database) == ["acme", "globex"]


def test_listing_missing_database_creates_nothing(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing a database that does not exist says so and how to create it."""
    monkeypatch.chdir(tmp_path)

    result = invoke(runner, "tenants", "--db", "typo.db")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: no tenant database at 'typo.db'; add a tenant to create it: "
        "bgservice tenants --db typo.db add SLUG"
    ]
    assert list(tmp_path.iterdir()) == []


def test_listing_missing_default_database_creates_nothing(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --db the hint needs none, and bgservice.db is not created."""
    monkeypatch.chdir(tmp_path)

    result = invoke(runner, "tenants")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: no tenant database at 'bgservice.db'; add a tenant to create it: "
        "bgservice tenants add SLUG"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("subcommand", [[], ["add", "zz"]])
def test_libpq_keyword_string_is_refused(
    subcommand: list[str],
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key=value DSN asks for a URL, hides the password and creates no file."""
    monkeypatch.chdir(tmp_path)
    dsn = "host=127.0.0.1 port=1 password=SEKRIT11"

    result = invoke(runner, "tenants", "--db", dsn, *subcommand)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: cannot use 'host=127.0.0.1 port=1 password=***' as the tenant "
        "database: it is a key=value connection string; write a postgresql:// URL "
        "instead, such as postgresql://user:password@host:5432/dbname"
    ]
    assert "SEKRIT11" not in result.output
    assert list(tmp_path.iterdir()) == []
