"""``bgservice list``: the installed backends, from metadata; ``--check`` loads each."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from bgservice_core._cli_shared import print_table
from bgservice_core._errors import ENTRY_POINT_GROUP, BGServiceError, ExitCode

_IDENTITY_COLUMNS = ["name", "distribution", "version"]

#: Marks the verdict ``check-one`` prints. A backend's own output is no verdict,
#: and neither is a zero exit: it may call os._exit(0) while being imported.
_VERDICT_PREFIX = "bgservice-check: "
#: Seconds one backend's import may take under ``list --check``.
CHECK_TIMEOUT = 60.0


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead.")
@click.option(
    "--check",
    is_flag=True,
    help="Import each backend in a process of its own and report whether it loads.",
)
def list_command(as_json: bool, check: bool) -> None:
    """List the installed backends, reading metadata only.

    A name offered by more than one distribution is flagged as a conflict;
    selecting it in 'bgservice run' is an error until one is uninstalled. A name
    no backend list can select (one with a comma or whitespace, or "nop") is
    flagged as invalid; its distribution must rename the entry point.

    \b
    Examples:
      bgservice list
      bgservice list --json
      bgservice list --check
    """
    from bgservice_core._discovery import discover_backends

    try:
        rows = _backend_rows(discover_backends())
    except BGServiceError as err:  # a malformed discovery setting, say
        click.echo(f"Error: {err}", err=True)
        sys.exit(err.exit_code)
    if check:
        _report_checks(rows, as_json)
    elif as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        columns = [*_IDENTITY_COLUMNS, "entry_point", "summary"]
        print_table(rows, columns, as_text=True)
    else:
        click.echo(f"no backends installed in entry-point group {ENTRY_POINT_GROUP!r}")


def _backend_rows(backends: dict[str, list[Any]]) -> list[dict[str, Any]]:
    from bgservice_core._discovery import backend_name_problem

    return [
        {
            "name": name,
            "distribution": entry.distribution,
            "version": entry.version,
            "entry_point": entry.value,
            "summary": entry.summary,
            "conflict": len(entries) > 1,
            "valid_name": backend_name_problem(name) is None,
        }
        for name, entries in backends.items()
        for entry in entries
    ]


def _report_checks(rows: list[dict[str, Any]], as_json: bool) -> None:
    # One process per backend: a backend that crashes the interpreter, or
    # leaves modules behind, cannot affect the verdict on another.
    # Imported here: a plain ``list`` needs neither, and runs often.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        outcomes = list(pool.map(_check_in_subprocess, [row["name"] for row in rows]))
    for row, outcome in zip(rows, outcomes, strict=True):
        row["status"] = outcome

    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        print_table(rows, [*_IDENTITY_COLUMNS, "status"], as_text=True)
    else:
        click.echo(f"no backends installed in entry-point group {ENTRY_POINT_GROUP!r}")
    if any(row["status"] != "ok" for row in rows):
        sys.exit(ExitCode.LOAD_ERROR)


def _check_in_subprocess(name: str) -> str:
    import subprocess

    # -P keeps the working directory off sys.path: the check must import what
    # ``bgservice run`` would, not a same-named source tree under the cwd.
    command = [sys.executable, "-P", "-m", "bgservice_core._cli", "check-one", name]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=CHECK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"import did not finish within {CHECK_TIMEOUT:g} s"

    verdicts = [
        line.removeprefix(_VERDICT_PREFIX)
        for line in (completed.stdout + "\n" + completed.stderr).splitlines()
        if line.startswith(_VERDICT_PREFIX)
    ]
    verdict = verdicts[-1] if verdicts else None
    if verdict == "ok" and completed.returncode == 0:
        return "ok"
    if verdict is not None and verdict != "ok":
        return verdict
    return _abnormal_exit(completed.returncode)


def _abnormal_exit(returncode: int) -> str:
    if returncode < 0:
        return f"the check process was killed by signal {-returncode}"
    return (
        f"the check process exited with code {returncode} without a verdict; "
        "the backend may end the interpreter while being imported"
    )


@click.command("check-one", hidden=True)
@click.argument("name")
def check_one(name: str) -> None:
    """Import and validate one backend; used by 'bgservice list --check'.

    \b
    Example:
      bgservice check-one heartbeat
    """
    from bgservice_core._opening import load_constructor, resolve_backends

    try:
        load_constructor(resolve_backends([name])[0])
    except BGServiceError as err:
        click.echo(_VERDICT_PREFIX + str(err).replace("\n", " "), err=True)
        sys.exit(err.exit_code)
    click.echo(_VERDICT_PREFIX + "ok")
