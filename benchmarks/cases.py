"""The cases: what is timed, against which baseline, and the target it must meet.

Ratios are always ours divided by the baseline, so below 1 means ours is faster.
Process cases compare whole fresh processes, from fork to exit; the drain and
the start compare a figure the child measured around the operation itself.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from benchmarks.environments import Environment, Shape, backend_package
from benchmarks.harness import (
    BenchmarkError,
    Command,
    Sample,
    Spawner,
    Summary,
    base_environment,
    count_instructions,
    empty_folder,
)
from benchmarks.rows import (
    TIMES,
    Row,
    compare,
    milliseconds,
    not_measured,
    verdict,
)

CHILDREN = Path(__file__).with_name("children")

#: What ``import bgservice_core`` must not pull in: a chassis uses none of it.
NOT_FOR_A_CHASSIS = ("click", "sqlite3", "tabulate")

#: Every generated backend's package starts with this.
BACKEND_PREFIX = backend_package(0).rstrip("0")

#: The stop() of each service in the drain case takes this long.
STOP_SECONDS = 0.2

#: Where bgservice keeps its discovery cache; every run points it into scratch.
CACHE_VARIABLE = "BGSERVICE_CACHE_DIR"

#: A process that answered from bgservice's discovery cache never imports this.
SCANNER_MODULE = "importlib_metadata"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much to measure: repeats per command, and the environments."""

    repeats: int
    warmup: int
    shapes: tuple[Shape, ...]
    drain_services: int = 50
    start_services: int = 200
    ledger_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    #: Processes per ledger size, and timed ticks per process.
    ledger_repeats: int = 3
    ledger_rounds: int = 2
    #: Whether to start a PostgreSQL server with .ci/postgres.sh when none is
    #: given in BGSERVICE_TEST_POSTGRES_DSN (it may have to install one).
    start_postgres: bool = True


@dataclasses.dataclass(frozen=True)
class Bench:
    """What every case needs: the spawner, the settings, the programs to run."""

    spawner: Spawner
    settings: Settings
    python: Path
    bgservice: Path
    scratch: Path
    #: Whether to count the instructions of the target comparisons too.
    instructions: bool = False

    def child(self, script: str, *arguments: str) -> tuple[str, ...]:
        """Return the command line that runs one of the child scripts."""
        return (str(self.python), str(CHILDREN / f"{script}.py"), *arguments)

    def startup(self) -> Command:
        """Return the empty interpreter, whose time the net ratios take off."""
        return Command("interpreter startup", (str(self.python), "-c", "pass"))

    def measure(
        self, commands: Sequence[Command], site: Path | None = None
    ) -> list[Summary]:
        """Time ``commands`` interleaved, with ``site`` on their PYTHONPATH."""
        return self.spawner.measure(
            commands,
            self.environment(site),
            repeats=self.settings.repeats,
            warmup=self.settings.warmup,
        )

    def environment(self, site: Path | None = None) -> dict[str, str]:
        """Return the base environment of every run, with ``site`` on PYTHONPATH.

        bgservice's discovery cache goes to a scratch folder of its own, so that
        the run neither reads nor fills the user's cache.
        """
        return base_environment(site) | {CACHE_VARIABLE: str(self.cache_folder())}

    def cache_folder(self, purpose: str = "warm") -> Path:
        """Return a scratch folder for bgservice's discovery cache."""
        return self.scratch / f"bgservice-cache-{purpose}"

    def instruction_note(
        self, ours: Command, baseline: Command, site: Path | None = None
    ) -> str:
        """With instruction counting on, say how the two compare in instructions."""
        if not self.instructions:
            return ""
        counts = []
        for command in (ours, baseline):
            if command.prepare is not None:
                command.prepare()
            environment = self.environment(site) | dict(command.environment)
            counts.append(count_instructions(command.argv, environment, self.scratch))
        return f"instructions {counts[0] / counts[1]:.2f}{TIMES}"

    def output_of(self, command: Command, site: Path | None = None) -> str:
        """Run ``command`` once, untimed, and return what it printed."""
        self.spawner.run(command, self.environment(site))
        return self.spawner.last_stdout()


# -- bgservice list --json ----------------------------------------------------


def list_case(bench: Bench, environment: Environment) -> list[Row]:
    """``bgservice list --json`` against the importlib-metadata floor.

    Measured as a chassis meets it: with the discovery cache written by an
    earlier call, and on the first call after an install, which rebuilds it.
    """
    argv = bench.child("list_ours", "list", "--json")
    ours = Command("bgservice list --json", argv)
    rebuilt = _cache_rebuilt(bench, "bgservice list --json, cache rebuilt", argv)
    floor = Command("importlib-metadata script", bench.child("list_floor"))
    _check_same_listing(bench, environment, ours, floor)

    summaries = bench.measure([ours, rebuilt, floor, bench.startup()], environment.site)

    warm, cold, baseline, startup = summaries
    label = environment.shape.label
    rows = [
        compare(
            "bgservice list --json",
            label,
            warm,
            baseline,
            target=1.10,
            startup=startup,
            note="; ".join(
                filter(
                    None,
                    [
                        _cache_hits(warm),
                        bench.instruction_note(ours, floor, environment.site),
                    ],
                )
            ),
        ),
        compare(
            "bgservice list --json",
            label,
            cold,
            baseline,
            target=None,
            startup=startup,
            note=_cache_hits(cold),
        ),
    ]
    return [_missed_unless_cached(rows[0], warm), rows[1]]


def _cache_rebuilt(bench: Bench, label: str, argv: tuple[str, ...]) -> Command:
    """Return ``argv`` run as the first call after an install: no cache to read."""
    folder = bench.cache_folder("rebuilt")
    return Command(
        label,
        argv,
        environment={CACHE_VARIABLE: str(folder)},
        prepare=empty_folder(folder),
    )


def _cache_hits(summary: Summary) -> str:
    hits = sum(SCANNER_MODULE not in sample.modules for sample in summary.samples)
    return f"answered from the discovery cache: {hits} of {len(summary.samples)}"


def _missed_unless_cached(row: Row, warm: Summary) -> Row:
    # A warm figure that did not come from the cache measures something else.
    if any(SCANNER_MODULE in sample.modules for sample in warm.samples):
        return dataclasses.replace(row, verdict="MISSED")
    return row


def _check_same_listing(
    bench: Bench, environment: Environment, ours: Command, floor: Command
) -> None:
    # A floor that printed less than we do would flatter it.
    columns = ("name", "distribution", "version")
    listings = []
    for command in (ours, floor):
        rows = json.loads(bench.output_of(command, environment.site))
        listings.append([tuple(row[column] for column in columns) for row in rows])
    if listings[0] != listings[1]:
        raise BenchmarkError(
            f"the floor lists {len(listings[1])} backends and bgservice list "
            f"{len(listings[0])}; they must agree before they are compared"
        )
    if len(listings[0]) < environment.shape.backends:
        raise BenchmarkError(
            f"bgservice list found {len(listings[0])} backends; "
            f"the environment has {environment.shape.backends}"
        )


# -- open --------------------------------------------------------------------


def open_case(bench: Bench, environment: Environment) -> list[Row]:
    """``open`` of one backend against the floor, pluggy and stevedore.

    Ours runs twice: answering from the discovery cache an earlier call wrote,
    as a chassis starts almost always, and on the first call after an install,
    which reads the metadata and rebuilds the cache.
    """
    name = environment.selected
    cold = bench.scratch / "stevedore-cold"
    warm = bench.scratch / "stevedore-warm"
    empty_folder(warm)()
    stevedore = importlib.util.find_spec("stevedore") is not None
    ours = Command(f"open({name!r})", bench.child("open_ours", name))
    commands = [
        ours,
        _cache_rebuilt(
            bench, f"open({name!r}), cache rebuilt", bench.child("open_ours", name)
        ),
        Command("select and load", bench.child("open_floor", name)),
        Command("pluggy, name=", bench.child("open_pluggy", name)),
        Command(
            "pluggy, whole group", bench.child("open_pluggy", name, "--whole-group")
        ),
    ]
    if stevedore:
        commands += [
            Command(
                "stevedore, cold cache",
                bench.child("open_stevedore", name),
                environment={"XDG_CACHE_HOME": str(cold)},
                prepare=empty_folder(cold),
            ),
            Command(
                "stevedore, warm cache",
                bench.child("open_stevedore", name),
                environment={"XDG_CACHE_HOME": str(warm)},
            ),
        ]
    commands.append(bench.startup())

    summaries = bench.measure(commands, environment.site)
    cached, rebuilt, floor, *alternatives, startup = summaries

    label = environment.shape.label
    counted = bench.instruction_note(commands[0], commands[2], environment.site)
    # The target is for the open every chassis start makes; the first one after
    # an install also rebuilds the cache, and its figure is reported.
    rows = [
        compare(
            "open one backend",
            label,
            summary,
            floor,
            target=target,
            startup=startup,
            note="; ".join(
                filter(None, [_backends_imported(summary), _cache_hits(summary)])
            ),
        )
        for summary, target in ((cached, 1.15), (rebuilt, None))
    ]
    rows[0] = _missed_unless_cached(rows[0], cached)
    if counted:
        rows[0] = dataclasses.replace(rows[0], note=f"{rows[0].note}; {counted}")
    for index, summary in enumerate((cached, rebuilt)):
        if _backend_modules(summary.samples) != {1}:
            rows[index] = dataclasses.replace(rows[index], verdict="MISSED")

    for alternative in alternatives:
        rows += [
            compare(
                "open, the alternatives",
                label,
                summary,
                alternative,
                target=target,
                startup=startup,
                note=_alternative_note(bench, alternative),
            )
            for summary, target in _pairings(cached, rebuilt, alternative)
        ]
    if not stevedore:
        reason = "stevedore is not installed (pip install -e '.[bench]')"
        rows.append(not_measured("open, stevedore", reason))
    return rows


def _pairings(
    cached: Summary, rebuilt: Summary, alternative: Summary
) -> list[tuple[Summary, float | None]]:
    """Say which of our two runs face ``alternative``, and with what target.

    Like for like: our cache against stevedore's, each warm or each rebuilt.
    pluggy keeps no cache, so it faces both: the open every chassis start
    makes, with the target, and the first one after an install, reported.
    """
    if "stevedore" in alternative.label:
        return [(rebuilt if "cold" in alternative.label else cached, 1.0)]
    return [(cached, 1.0), (rebuilt, None)]


def _alternative_note(bench: Bench, alternative: Summary) -> str:
    note = _backends_imported(alternative)
    # stevedore's own rule: no cache for an interpreter that lives under /tmp.
    if "warm" in alternative.label and str(bench.python).startswith("/tmp"):
        note += "; stevedore keeps no cache for an interpreter under /tmp"
    return note


def _backend_modules(samples: Iterable[Sample]) -> set[int]:
    return {
        sum(module.startswith(BACKEND_PREFIX) for module in sample.modules)
        for sample in samples
    }


def _backends_imported(summary: Summary) -> str:
    counts = sorted(_backend_modules(summary.samples))
    return "backend modules imported: " + " or ".join(str(c) for c in counts)


# -- imports and --help ----------------------------------------------------


def import_case(bench: Bench) -> list[Row]:
    """A chassis's import of bgservice_core against pluggy plus importlib-metadata."""
    ours = Command(
        "from bgservice_core import Config, ServiceRunner, open",
        bench.child("import_chassis"),
    )
    floor = Command("import pluggy, importlib_metadata", bench.child("import_floor"))

    summaries = bench.measure([ours, floor, bench.startup()])

    unwanted = sorted(
        {m for s in summaries[0].samples for m in s.modules} & set(NOT_FOR_A_CHASSIS)
    )
    note = (
        f"imports {', '.join(unwanted)}" if unwanted else "no click, sqlite3, tabulate"
    )
    note = "; ".join(filter(None, [note, bench.instruction_note(ours, floor)]))
    row = compare(
        "import bgservice_core",
        "no plugins",
        summaries[0],
        summaries[1],
        target=1.2,
        startup=summaries[2],
        note=note,
    )
    return [dataclasses.replace(row, verdict="MISSED") if unwanted else row]


def help_case(bench: Bench) -> list[Row]:
    """``bgservice --help`` against importing click alone."""
    ours = Command("bgservice --help", (str(bench.bgservice), "--help"))
    floor = Command(
        'python -c "import click"', (str(bench.python), "-c", "import click")
    )

    summaries = bench.measure([ours, floor, bench.startup()])

    row = compare(
        "bgservice --help",
        "no plugins",
        summaries[0],
        summaries[1],
        target=1.3,
        startup=summaries[2],
        note=bench.instruction_note(ours, floor),
    )
    return [row]


# -- the runner: drain and start ---------------------------------------------


def drain_case(bench: Bench) -> list[Row]:
    """The drain of N services that each take 200 ms to stop, against 200 ms."""
    count = bench.settings.drain_services
    command = Command(f"drain of {count}", bench.child("drain", str(count)))

    (summary,) = bench.measure([command])

    drain, threads = summary.median("drain"), summary.median("threads")
    ratio = drain / STOP_SECONDS
    row = Row(
        case=f"drain of {count} services, 200 ms each",
        environment="in-process",
        ours=command.label,
        ours_ms=drain * 1000,
        baseline="the slowest stop()",
        baseline_ms=STOP_SECONDS * 1000,
        ratio=ratio,
        net_ratio=None,
        target=1.10,
        verdict=verdict(ratio, 1.10),
        ours_rss_mib=summary.peak_rss_mib(),
        note=f"{count} plain threads sleeping 200 ms, joined: {threads * 1000:.1f} ms",
        ours_quartiles_ms=milliseconds(summary.quartiles("drain")),
    )
    return [row]


def start_case(bench: Bench) -> list[Row]:
    """The start of N services whose start() returns at once: cost per service."""
    count = bench.settings.start_services
    command = Command(f"start of {count}", bench.child("start", str(count)))

    (summary,) = bench.measure([command])

    start, direct = summary.median("start"), summary.median("direct")
    per_service = (start - direct) / count
    row = Row(
        case=f"start of {count} services returning at once",
        environment="in-process",
        ours="ServiceRunner.start",
        ours_ms=start * 1000,
        baseline="each start() called directly",
        baseline_ms=direct * 1000,
        ratio=None,
        net_ratio=None,
        target=None,
        verdict="reported",
        ours_rss_mib=summary.peak_rss_mib(),
        note=f"{per_service * 1e6:.0f} µs per service",
        ours_quartiles_ms=milliseconds(summary.quartiles("start")),
    )
    return [row]


# -- helpers -------------------------------------------------------------------


def progress(message: str) -> None:
    """Tell the person waiting what is being measured now."""
    print(message, file=sys.stderr, flush=True)
