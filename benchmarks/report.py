"""The table: as Markdown for the docs, as JSON next to it, with the machine."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from benchmarks.cases import Settings
from benchmarks.rows import TIMES, Row

MARKDOWN_NAME = "benchmarks.md"
JSON_NAME = "benchmarks.json"

_LIBRARIES = ("bgservice-core", "pluggy", "importlib-metadata", "stevedore", "click")

_HEADERS = (
    "case",
    "environment",
    "ours",
    "median ms",
    "baseline",
    "median ms",
    "ratio",
    "net of startup",
    "target",
    "verdict",
    "peak RSS MiB ours / baseline",
    "note",
)

_METHOD = """\
How to read it:

- Every time is the median over fresh processes. The commands of a case run
  in rounds, in turn (A B C, then C B A, ...), after one untimed warm-up round.
- A ratio is ours divided by the baseline, taken round by round and then the
  median: the two runs of a round follow each other, so a slow spell of the
  shared machine slows both. Below 1, ours is faster. Absolute times vary from
  run to run; ratios much less.
- "Net of startup" first takes the time of an empty interpreter
  (`python -c pass`, run in the same rounds) off both sides: the ratio of the
  work itself.
- "instructions" in a note (with `--instructions`) is the ratio of the
  instructions the two commands executed, counted once each by valgrind's
  callgrind: a figure the noise of the machine does not move.
- bgservice keeps a discovery cache (see the chassis guide), so `list` and
  `open` are measured twice. The plain row answers from the cache an earlier
  call wrote, as every chassis start after the first does; the note counts the
  runs that did, from the modules each imported. The "cache rebuilt" row
  starts each run with an empty cache folder, as the first call after an
  install does: it reads the metadata and writes the cache. The targets are
  for the first; the second is reported, and faces stevedore's cold cache.
- The import, `--help`, `list` and `open` figures are whole processes, from
  fork to exit. The drain, the start and the credit-gate tick are timed
  inside the child around the operation; a tick is called directly, after one
  untimed tick, alternating with the plain query, and a Gate counts its calls.
- Peak RSS is the child's own `ru_maxrss`, as `wait4` reports it to a small
  helper process that forks every child: forking from the harness itself would
  report the harness's memory as the child's.
- Environments are generated site folders on `PYTHONPATH`: M backend
  distributions among N unrelated ones, a quarter of those with entry points
  in other groups, each written as pip leaves an installed wheel (RECORD with
  hashes, compiled bytecode). Ledgers hold N tenants, 1 % of them out of credit
  and already suspended, in SQLite files and in a PostgreSQL database."""


def machine() -> dict[str, str]:
    """Describe this machine and the libraries compared."""
    description = {
        "cpus": str(os.cpu_count()),
        "cpu model": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
    }
    for name in _LIBRARIES:
        try:
            description[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            description[name] = "not installed"
    return description


def markdown(rows: Sequence[Row], settings: Settings, command: str, quick: bool) -> str:
    """Return the benchmarks page fragment: what ran where, then the table."""
    kind = "a quick smoke run, too short to trust" if quick else "a full run"
    lines = [
        f"Results of {kind} on {datetime.date.today().isoformat()}, "
        f"{settings.repeats} timed runs of each command. Reproduce with:",
        "",
        "```sh",
        command,
        "```",
        "",
        "Machine: "
        + "; ".join(f"{key} {value}" for key, value in machine().items())
        + ".",
        "",
        "| " + " | ".join(_HEADERS) + " |",
        "|" + "---|" * len(_HEADERS),
        *("| " + " | ".join(_cells(row)) + " |" for row in rows),
        "",
        _METHOD,
        "",
    ]
    return "\n".join(lines)


def write(
    folder: Path, rows: Sequence[Row], settings: Settings, command: str, quick: bool
) -> Path:
    """Write the Markdown table and its JSON next to it; return the Markdown file."""
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / MARKDOWN_NAME
    page.write_text(markdown(rows, settings, command, quick), encoding="utf-8")
    data = {
        "command": command,
        "quick": quick,
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "settings": _plain(dataclasses.asdict(settings)),
        "rows": [_plain(dataclasses.asdict(row)) for row in rows],
    }
    text = json.dumps(data, indent=2, allow_nan=False)
    (folder / JSON_NAME).write_text(text + "\n", encoding="utf-8")
    return page


def _cells(row: Row) -> list[str]:
    return [
        row.case,
        row.environment,
        f"`{row.ours}`" if row.ours else "",
        _number(row.ours_ms),
        f"`{row.baseline}`" if row.baseline else "",
        _number(row.baseline_ms),
        _times(row.ratio),
        _times(row.net_ratio),
        f"≤ {row.target:.2f}{TIMES}" if row.target is not None else "report",
        row.verdict,
        f"{_number(row.ours_rss_mib)} / {_number(row.baseline_rss_mib)}",
        row.note,
    ]


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.1f}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}{TIMES}"


def _plain(value: object) -> object:
    """Replace what JSON cannot hold (NaN, tuples of shapes) with plain values."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"
