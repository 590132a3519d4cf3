"""Run every benchmark case and write the table for the docs.

Usage: ``python benchmarks/run.py [--quick] [--output FOLDER] [--workdir FOLDER]``.
A full run takes several minutes; ``--quick`` is a smoke run of under a minute
whose figures are too few to trust.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Run as a script, this file's folder is on sys.path, not the project's root.
ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from benchmarks import cases, credit_gate, report  # noqa: E402
from benchmarks.environments import (  # noqa: E402
    Environment,
    Shape,
    generate,
    wait_until_settled,
)
from benchmarks.harness import BenchmarkError, Spawner  # noqa: E402
from benchmarks.rows import Row  # noqa: E402

FULL = cases.Settings(
    repeats=15,
    warmup=1,
    shapes=tuple(Shape(m, n) for n in (300, 1000) for m in (10, 100, 500)),
)
QUICK = cases.Settings(
    repeats=3,
    warmup=1,
    shapes=(Shape(10, 300), Shape(500, 300)),
    ledger_sizes=(10_000,),
    ledger_repeats=1,
    start_postgres=False,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table, and write it; return the exit status."""
    options = _parser().parse_args(argv)
    settings = QUICK if options.quick else FULL
    flags = [
        flag for flag in ("--quick", "--instructions") if getattr(options, flag[2:])
    ]
    command = " ".join(["python benchmarks/run.py", *flags])

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bgservice-bench-") as temporary:
        workdir = Path(options.workdir or temporary)
        try:
            rows = measure_all(settings, workdir, instructions=options.instructions)
        except BenchmarkError as err:
            print(f"benchmark failed: {err}", file=sys.stderr)
            return 1

    page = report.write(options.output, rows, settings, command, options.quick)
    print(page.read_text(encoding="utf-8"))
    cases.progress(f"wrote {page} in {time.monotonic() - began:.0f}s")
    return 0


def measure_all(
    settings: cases.Settings, workdir: Path, *, instructions: bool = False
) -> list[Row]:
    """Generate the environments, then run every case in a fixed order."""
    environments = [_generate(workdir, shape) for shape in settings.shapes]
    with Spawner(workdir / "scratch") as spawner:
        bench = cases.Bench(
            spawner=spawner,
            settings=settings,
            python=Path(sys.executable),
            bgservice=_bgservice_script(),
            scratch=workdir / "scratch",
            instructions=instructions,
        )
        return _run_cases(bench, environments)


def _run_cases(bench: cases.Bench, environments: list[Environment]) -> list[Row]:
    rows: list[Row] = []
    cases.progress("measuring the imports and --help")
    rows += cases.import_case(bench) + cases.help_case(bench)
    for environment in environments:
        cases.progress(f"measuring list and open: {environment.shape.label}")
        wait_until_settled(environment.site)
        rows += cases.list_case(bench, environment)
        rows += cases.open_case(bench, environment)
    cases.progress("measuring the drain and the start")
    rows += cases.drain_case(bench) + cases.start_case(bench)
    rows += credit_gate.credit_gate_case(bench)
    return rows


def _generate(workdir: Path, shape: Shape) -> Environment:
    site = workdir / shape.folder_name
    shutil.rmtree(site, ignore_errors=True)
    cases.progress(f"generating {shape.label} in {site}")
    return generate(site, shape)


def _bgservice_script() -> Path:
    beside = Path(sys.executable).parent / "bgservice"
    found = beside if beside.exists() else shutil.which("bgservice")
    if found is None:
        raise SystemExit(
            "cannot find the bgservice command next to this interpreter or on PATH; "
            "install the project into it first (pip install -e '.[bench]')"
        )
    return Path(found)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of under a minute: fewer runs and environments",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "_generated",
        help="where benchmarks.md and benchmarks.json go (default: docs/_generated)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count, with valgrind, the instructions of ours and of each "
        "target's baseline: ratios no noise moves (adds minutes)",
    )
    parser.add_argument(
        "--workdir",
        help="generate the environments here and keep them, to profile a case",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
