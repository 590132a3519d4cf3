"""The installed ``heartbeat`` backend: beats, the final beat, settings, shutdown."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import importlib_metadata
import pytest

import bgservice_core
from bgservice_core import ExitCode, ServiceConstructionError, SettingError

NODE_ID = "node-1.test.example"

OpenHeartbeat = Callable[[], bgservice_core.Service]


def heartbeat_row(database: Path, node_id: str = NODE_ID) -> dict[str, Any] | None:
    """This node's row, read without creating the file; None until it exists."""
    if not database.exists():
        return None
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        row = connection.execute(
            "SELECT * FROM heartbeats WHERE node_id = ?", (node_id,)
        ).fetchone()
    except sqlite3.OperationalError:
        return None  # the writer has not created the table yet
    finally:
        connection.close()
    return dict(row) if row is not None else None


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until ``condition`` returns something truthy, and return that.

    The bound only proves the wait ends; a healthy run needs a fraction of it.
    """
    deadline = time.monotonic() + timeout
    while True:
        outcome = condition()
        if outcome:
            return outcome
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


def utc_stamp() -> str:
    """Now, in the format the heartbeat writes."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def beats_at_least(database: Path, count: int) -> Callable[[], dict[str, Any] | None]:
    """A condition: the row exists with at least ``count`` beats."""

    def condition() -> dict[str, Any] | None:
        row = heartbeat_row(database)
        return row if row is not None and row["beat_count"] >= count else None

    return condition


def loop_threads() -> list[threading.Thread]:
    """The heartbeat loop threads alive in this process."""
    return [
        thread
        for thread in threading.enumerate()
        if thread.name == "bgservice-loop-heartbeat"
    ]


def setting_refusal(open_heartbeat: OpenHeartbeat) -> SettingError:
    """Open the backend, expecting a construction error caused by a setting."""
    with pytest.raises(ServiceConstructionError) as caught:
        open_heartbeat()

    error = caught.value
    cause = error.__cause__
    assert isinstance(cause, SettingError)
    assert error.backend == "heartbeat"
    assert error.exit_code is ExitCode.LOAD_ERROR
    assert str(error).startswith("backend 'heartbeat' could not build its service: ")
    assert str(cause) in str(error)
    return cause


# -- the installed distribution -------------------------------------------------


def test_entry_point_comes_from_the_distribution() -> None:
    """'heartbeat' is advertised in bgservice.backends by bgservice-heartbeat."""
    (entry_point,) = importlib_metadata.entry_points(
        group="bgservice.backends", name="heartbeat"
    )

    assert entry_point.value == "bgservice_heartbeat"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "bgservice-heartbeat"
    assert entry_point.dist.version == "0.1.0"


def test_loaded_module_is_the_installed_one() -> None:
    """The code under test is the copy pip installed, not the source tree."""
    (entry_point,) = importlib_metadata.entry_points(
        group="bgservice.backends", name="heartbeat"
    )
    assert entry_point.dist is not None

    module = entry_point.load()

    installed = entry_point.dist.locate_file("bgservice_heartbeat/__init__.py")
    assert Path(str(installed)).resolve() == Path(module.__file__).resolve()


def test_discovery_lists_heartbeat() -> None:
    """The core's discovery reports the backend with its distribution."""
    (entry,) = bgservice_core.discover_backends()["heartbeat"]

    assert (entry.distribution, entry.value) == (
        "bgservice-heartbeat",
        "bgservice_heartbeat",
    )


# -- beating ---------------------------------------------------------------------


def test_beats_accumulate(
    database: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a short period the row's beat count keeps growing."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "0.02")
    service = open_heartbeat()

    service.start()
    first = wait_for(beats_at_least(database, 1), "the first beat")
    later = wait_for(beats_at_least(database, first["beat_count"] + 3), "more beats")

    assert later["pid"] == os.getpid()
    assert later["started_at"] == first["started_at"]
    assert later["last_beat_at"] >= first["last_beat_at"] >= first["started_at"]
    assert later["stopped_at"] is None


def test_first_beat_is_immediate_and_stop_writes_final_beat(
    database: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start beats once at once; stop adds a final beat stamped stopped_at."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "3600")
    service = open_heartbeat()

    service.start()
    running = wait_for(beats_at_least(database, 1), "the first beat")
    service.stop()
    stopped = heartbeat_row(database)

    assert running["beat_count"] == 1
    assert running["stopped_at"] is None
    assert stopped is not None
    assert stopped["beat_count"] == 2
    assert stopped["stopped_at"] == stopped["last_beat_at"]
    assert stopped["stopped_at"] >= running["last_beat_at"]
    assert stopped["started_at"] == running["started_at"]


def test_restarted_node_starts_a_fresh_row(
    database: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that starts again gets a new started_at, no stopped_at, a new count."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "3600")
    first_run = open_heartbeat()
    first_run.start()
    wait_for(beats_at_least(database, 1), "the first run's beat")
    first_run.stop()
    before = heartbeat_row(database)
    assert before is not None
    wait_for(lambda: utc_stamp() > before["stopped_at"], "the clock to move on")

    second_run = open_heartbeat()
    second_run.start()
    # The row is reset before the first beat lands: wait for that beat too.
    after = wait_for(
        lambda: (
            (row := heartbeat_row(database))
            and row["stopped_at"] is None
            and row["beat_count"] >= 1
            and row
        ),
        "the second run's beat",
    )

    assert after["started_at"] > before["stopped_at"]
    assert after["beat_count"] == 1


def test_pruned_row_is_written_again(
    database: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator deleting the row while the node runs does not end its beats."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "0.02")
    service = open_heartbeat()
    service.start()
    first = wait_for(beats_at_least(database, 1), "the first beat")

    connection = sqlite3.connect(database)
    with connection:
        connection.execute("DELETE FROM heartbeats")
    connection.close()
    again = wait_for(lambda: heartbeat_row(database), "the row to come back")

    assert again["started_at"] == first["started_at"]
    assert again["beat_count"] > first["beat_count"]


def test_default_database_is_the_chassis_one(
    tmp_path: Path,
    open_heartbeat: OpenHeartbeat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without BGSERVICE_HEARTBEAT_DB the beats go to BGSERVICE_DB's file."""
    chassis_database = tmp_path / "chassis.db"
    monkeypatch.setenv("BGSERVICE_DB", str(chassis_database))
    service = open_heartbeat()

    service.start()
    service.stop()

    row = heartbeat_row(chassis_database)
    assert row is not None
    assert row["stopped_at"] is not None


def test_last_resort_database_is_bgservice_db(
    tmp_path: Path,
    open_heartbeat: OpenHeartbeat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With neither variable set the beats go to bgservice.db in the working folder."""
    monkeypatch.chdir(tmp_path)
    service = open_heartbeat()

    service.start()
    service.stop()

    assert heartbeat_row(tmp_path / "bgservice.db") is not None


def test_crashed_loop_leaves_stopped_at_empty(
    database: Path,
    config: bgservice_core.Config,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A beat that fails is reported as a crash, and the row does not claim a stop."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "0.02")
    crashes: list[tuple[str, BaseException]] = []
    crash_reported = threading.Event()

    def record(backend: str, error: BaseException) -> None:
        crashes.append((backend, error))
        crash_reported.set()

    watched = dataclasses.replace(config, failure_handler=record)
    (service,) = bgservice_core.open("heartbeat", watched)
    connection = sqlite3.connect(database)
    with connection:
        # The second beat of a running node fails; a final beat would not.
        connection.execute(
            "CREATE TRIGGER refuse_second_beat BEFORE UPDATE ON heartbeats"
            " WHEN NEW.beat_count = 2 AND NEW.stopped_at IS NULL"
            " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    connection.close()

    service.start()
    assert crash_reported.wait(timeout=30)
    service.stop()

    assert [(backend, str(error)) for backend, error in crashes] == [
        ("heartbeat", "disk on fire")
    ]
    row = heartbeat_row(database)
    assert row is not None
    assert (row["beat_count"], row["stopped_at"]) == (1, None)
    assert loop_threads() == []


# -- refused settings ------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["abc", "-5", "0", "nan", "inf", ""])
def test_bad_period_is_a_construction_error(
    raw: str,
    database: Path,
    open_heartbeat: OpenHeartbeat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad period stops the build, naming the variable and value, touching no file."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", raw)

    cause = setting_refusal(open_heartbeat)

    assert (cause.variable, cause.value) == ("BGSERVICE_HEARTBEAT_PERIOD", raw)
    assert str(cause) == (
        f"BGSERVICE_HEARTBEAT_PERIOD={raw!r} is invalid: expected a positive "
        "number of seconds, such as 10"
    )
    assert not database.exists()


def test_database_in_missing_directory_is_refused(
    tmp_path: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose directory does not exist is refused, and nothing is created."""
    path = tmp_path / "missing" / "beats.db"
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_DB", str(path))

    cause = setting_refusal(open_heartbeat)

    assert str(cause) == (
        f"BGSERVICE_HEARTBEAT_DB={str(path)!r} is invalid: expected a file in an "
        f"existing directory; {path.parent} is not a directory"
    )
    assert not path.parent.exists()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///var/lib/beats.db", "sqlite:///var/lib/beats.db"),
        (
            "postgresql://chassis:s3cret@db.example/beats",
            "postgresql://chassis:***@db.example/beats",
        ),
    ],
)
def test_database_url_is_refused_without_its_password(
    url: str, shown: str, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL is refused as written, not mangled into a path, password hidden."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_DB", url)

    cause = setting_refusal(open_heartbeat)

    assert str(cause) == (
        f"BGSERVICE_HEARTBEAT_DB={shown!r} is invalid: expected a SQLite file path, "
        "not a URL; the heartbeat writes to SQLite (set BGSERVICE_HEARTBEAT_DB to "
        "a file when the chassis database is not SQLite)"
    )
    assert "s3cret" not in str(cause)


def test_directory_as_database_is_refused(
    tmp_path: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory is not a database file."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_DB", str(tmp_path))

    cause = setting_refusal(open_heartbeat)

    assert str(cause) == (
        f"BGSERVICE_HEARTBEAT_DB={str(tmp_path)!r} is invalid: expected a file "
        "path, not a directory"
    )


def test_file_that_is_not_a_database_is_refused(
    tmp_path: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing file SQLite cannot use is refused at build time, left unchanged."""
    path = tmp_path / "notes.txt"
    path.write_text("not SQLite\n" * 200)
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_DB", str(path))

    cause = setting_refusal(open_heartbeat)

    assert str(cause) == (
        f"BGSERVICE_HEARTBEAT_DB={str(path)!r} is invalid: expected a writable "
        "SQLite file (SQLite says: file is not a database)"
    )
    assert path.read_text() == "not SQLite\n" * 200


def test_bad_chassis_database_names_its_variable(
    tmp_path: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the path came from BGSERVICE_DB, the error names BGSERVICE_DB."""
    path = tmp_path / "missing" / "chassis.db"
    monkeypatch.setenv("BGSERVICE_DB", str(path))

    cause = setting_refusal(open_heartbeat)

    assert (cause.variable, cause.value) == ("BGSERVICE_DB", str(path))


@pytest.mark.parametrize("variable", ["BGSERVICE_HEARTBEAT_DB", "BGSERVICE_DB"])
def test_blank_database_is_refused(
    variable: str, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set but blank database variable is an error, not the working folder."""
    monkeypatch.setenv(variable, " ")

    cause = setting_refusal(open_heartbeat)

    assert str(cause) == (
        f"{variable}=' ' is invalid: expected a non-empty value, or leave it unset"
    )


# -- stopping ------------------------------------------------------------------------


def test_stop_is_prompt_with_a_long_period(
    database: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop wakes the loop in its hour-long wait instead of waiting it out."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "3600")
    service = open_heartbeat()
    service.start()
    wait_for(beats_at_least(database, 1), "the first beat")

    began = time.monotonic()
    service.stop()

    assert time.monotonic() - began < 5.0
    assert loop_threads() == []


def test_no_thread_survives_stop(
    database: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After stop, the threads alive are exactly those alive before start."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "0.02")
    before = set(threading.enumerate())
    service = open_heartbeat()

    service.start()
    wait_for(beats_at_least(database, 2), "two beats")
    assert len(loop_threads()) == 1
    service.stop()

    assert set(threading.enumerate()) == before


def test_stop_twice_is_harmless(
    database: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second stop neither raises nor writes another beat."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "3600")
    service = open_heartbeat()
    service.start()
    wait_for(beats_at_least(database, 1), "the first beat")
    service.stop()
    after_first_stop = heartbeat_row(database)

    service.stop()

    assert heartbeat_row(database) == after_first_stop


def test_stop_before_start_is_harmless(
    database: Path, open_heartbeat: OpenHeartbeat
) -> None:
    """Stopping a service never started writes nothing, and a later start is inert."""
    service = open_heartbeat()

    service.stop()
    service.start()
    service.stop()

    assert heartbeat_row(database) is None
    assert loop_threads() == []


# -- under the reference chassis ------------------------------------------------------


def bgservice_command() -> str:
    """The console script installed next to this interpreter."""
    return str(Path(sys.executable).with_name("bgservice"))


#: Where discovery may keep its cache is the test run's choice, not a setting.
KEPT_SETTINGS = ("BGSERVICE_CACHE_DIR", "BGSERVICE_DISCOVERY_CACHE")


def chassis_environment(**settings: str) -> dict[str, str]:
    """This environment without inherited bgservice settings, plus ``settings``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("BGSERVICE_") or name in KEPT_SETTINGS
    }
    environment.update(settings)
    return environment


def test_chassis_drains_heartbeat_on_sigterm(tmp_path: Path) -> None:
    """bgservice run heartbeat beats into --db and writes the final beat on SIGTERM."""
    database = tmp_path / "chassis.db"
    command = [bgservice_command(), "run", "heartbeat", "--db", str(database)]
    process = subprocess.Popen(
        [*command, "--node-id", NODE_ID],
        env=chassis_environment(BGSERVICE_HEARTBEAT_PERIOD="0.05"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: heartbeat_row(database) or process.poll() is not None,
            "the chassis' first beat",
            timeout=60,
        )
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == ExitCode.OK, stderr
    row = heartbeat_row(database)
    assert row is not None
    assert row["pid"] == process.pid
    assert row["beat_count"] >= 1
    assert row["stopped_at"] is not None
    assert row["stopped_at"] == row["last_beat_at"]


def test_chassis_refuses_bad_period(tmp_path: Path) -> None:
    """bgservice run exits 4 with the setting's error when the period is malformed."""
    completed = subprocess.run(
        [bgservice_command(), "run", "heartbeat", "--db", str(tmp_path / "c.db")],
        env=chassis_environment(BGSERVICE_HEARTBEAT_PERIOD="abc"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == ExitCode.LOAD_ERROR
    assert (
        "BGSERVICE_HEARTBEAT_PERIOD='abc' is invalid: expected a positive number "
        "of seconds, such as 10"
    ) in completed.stderr


# -- a busy or unwritable database -------------------------------------------------


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    """Make the installed backend give up on a held lock after a moment."""
    module = importlib_metadata.entry_points(
        group="bgservice.backends", name="heartbeat"
    )["heartbeat"].load()
    monkeypatch.setattr(module, "BUSY_TIMEOUT_SECONDS", 0.05)
    return 0.05


@contextlib.contextmanager
def locked(database: Path) -> Iterator[None]:
    """Hold the database's write lock, as a backup or a sqlite3 shell may."""
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable for this process, even when it runs as root."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        return
    # Root ignores permission bits; only the immutable attribute stops it.
    if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
        pytest.skip("cannot make a file read-only for root here (chattr +i failed)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The heartbeat's log messages at exactly ``level``."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("tests.heartbeat") and record.levelno == level
    ]


def test_locked_database_misses_beats_without_crashing(
    database: Path,
    config: bgservice_core.Config,
    short_busy_timeout: float,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lock held past the busy timeout skips beats, warns once, then beats resume."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "0.02")
    caplog.set_level(logging.INFO, logger="tests.heartbeat")
    crashes: list[BaseException] = []
    watched = dataclasses.replace(
        config, failure_handler=lambda _backend, error: crashes.append(error)
    )
    (service,) = bgservice_core.open("heartbeat", watched)
    service.start()
    try:
        before = wait_for(beats_at_least(database, 1), "the first beat")
        with locked(database):
            wait_for(lambda: messages(caplog, logging.WARNING), "a missed beat")
            # Several more periods and busy timeouts pass under the lock.
            time.sleep(20 * short_busy_timeout)
        wait_for(beats_at_least(database, before["beat_count"] + 2), "beats again")
        wait_for(lambda: messages(caplog, logging.INFO)[1:], "the resumed notice")
    finally:
        service.stop()

    assert crashes == []
    (warning,) = messages(caplog, logging.WARNING)
    assert warning.startswith(
        f"heartbeat missed a beat, will retry every 0.02s: {database} (SQLite says: "
    )
    assert "database is locked" in warning
    assert any(
        message.startswith("heartbeat resumed after ")
        for message in messages(caplog, logging.INFO)
    )
    row = heartbeat_row(database)
    assert row is not None
    assert row["stopped_at"] is not None


def test_locked_database_at_stop_is_reported_promptly(
    database: Path,
    open_heartbeat: OpenHeartbeat,
    short_busy_timeout: float,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A final beat blocked by a lock is logged as an ERROR; stop does not hang."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "3600")
    service = open_heartbeat()
    service.start()
    wait_for(beats_at_least(database, 1), "the first beat")

    with locked(database):
        began = time.monotonic()
        service.stop()
        elapsed = time.monotonic() - began

    assert elapsed < 5.0
    (error,) = messages(caplog, logging.ERROR)
    assert error == (
        f"final beat not written to {database}, so node {NODE_ID!r} will read as "
        "having died (SQLite says: database is locked)"
    )
    row = heartbeat_row(database)
    assert row is not None
    assert (row["beat_count"], row["stopped_at"]) == (1, None)
    assert loop_threads() == []


def test_read_only_database_is_a_construction_error(
    database: Path, open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing file with the table, but not writable, stops the build."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", "3600")
    first = open_heartbeat()
    first.start()
    wait_for(beats_at_least(database, 1), "the first beat")
    first.stop()

    with read_only(database):
        cause = setting_refusal(open_heartbeat)

    assert str(cause) == (
        f"BGSERVICE_HEARTBEAT_DB={str(database)!r} is invalid: expected a writable "
        "SQLite file (SQLite says: attempt to write a readonly database)"
    )


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            "host=localhost password=KVSECRET dbname=x",
            "host=localhost password=*** dbname=x",
        ),
        ("dbname=beats user=chassis", "dbname=beats user=chassis"),
    ],
)
def test_keyword_connection_string_is_refused(
    dsn: str,
    shown: str,
    tmp_path: Path,
    open_heartbeat: OpenHeartbeat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A libpq key=value string is refused with its password hidden, no file made."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_DB", dsn)

    cause = setting_refusal(open_heartbeat)

    assert str(cause) == (
        f"BGSERVICE_HEARTBEAT_DB={shown!r} is invalid: expected a SQLite file "
        "path, not a key=value connection string; the heartbeat writes to SQLite "
        "(set BGSERVICE_HEARTBEAT_DB to a file when the chassis database is not "
        "SQLite)"
    )
    assert "KVSECRET" not in str(cause)
    assert list(tmp_path.iterdir()) == []


def test_in_memory_database_is_refused(
    open_heartbeat: OpenHeartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:memory: is refused: the beats would vanish with each connection."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_DB", ":memory:")

    cause = setting_refusal(open_heartbeat)

    assert str(cause) == (
        "BGSERVICE_HEARTBEAT_DB=':memory:' is invalid: expected a SQLite file "
        "path; an in-memory database keeps no beats"
    )


@pytest.mark.parametrize("raw", ["1e-9", "0.001"])
def test_period_below_minimum_is_refused(
    raw: str,
    database: Path,
    open_heartbeat: OpenHeartbeat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A period too short to be anything but a busy loop of writes is refused."""
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_PERIOD", raw)

    cause = setting_refusal(open_heartbeat)

    assert str(cause) == (
        f"BGSERVICE_HEARTBEAT_PERIOD={raw!r} is invalid: expected a number of "
        "seconds of at least 0.01, such as 10"
    )
    assert not database.exists()


def test_chassis_refuses_read_only_database(tmp_path: Path) -> None:
    """bgservice run exits 4 naming the variable when the database is read-only."""
    heartbeat_database = tmp_path / "beats.db"
    connection = sqlite3.connect(heartbeat_database)
    # Already in WAL, as the heartbeat leaves it, switching modes writes nothing.
    connection.execute("PRAGMA journal_mode=WAL")
    with connection:
        connection.execute("CREATE TABLE heartbeats (node_id TEXT PRIMARY KEY)")
    connection.close()

    with read_only(heartbeat_database):
        completed = subprocess.run(
            [bgservice_command(), "run", "heartbeat", "--db", str(tmp_path / "c.db")],
            env=chassis_environment(BGSERVICE_HEARTBEAT_DB=str(heartbeat_database)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert completed.returncode == ExitCode.LOAD_ERROR, completed.stderr
    assert (
        f"BGSERVICE_HEARTBEAT_DB={str(heartbeat_database)!r} is invalid: expected "
        "a writable SQLite file"
    ) in completed.stderr
