"""Timing commands in fresh processes, interleaved, with their peak memory.

Every run of every command is a new process, started by the helper in
``spawner.py``. The commands of one case run in rounds, the order reversed every
other round (A B, B A, A B, ...), so that a slow spell of the shared machine
falls on all of them alike; figures are compared only within one such set.
"""

from __future__ import annotations

import dataclasses
import marshal
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

SPAWNER = Path(__file__).with_name("spawner.py")

#: The file a child script writes its own figures and imported modules to.
REPORT_VARIABLE = "BGSERVICE_BENCH_REPORT"

_LENGTH_BYTES = 4


class BenchmarkError(RuntimeError):
    """A measured command failed, so its figures would mean nothing."""


@dataclasses.dataclass(frozen=True)
class Command:
    """One thing to time.

    :param label: how the table names it.
    :param argv: the command line; ``argv[0]`` is an executable's path.
    :param environment: variables set on top of the harness's base environment.
    :param prepare: called before each run, untimed (to empty a cache, say).
    """

    label: str
    argv: tuple[str, ...]
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    prepare: Callable[[], None] | None = None


@dataclasses.dataclass(frozen=True)
class Sample:
    """One run: its wall time, its peak memory, and what the child reported."""

    wall: float
    max_rss_kib: int
    figures: Mapping[str, float]
    modules: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Summary:
    """The samples of one command, reduced to what the table shows."""

    label: str
    samples: tuple[Sample, ...]

    def median(self, figure: str | None = None) -> float:
        """Return the median wall time, or of a figure the child reported."""
        return statistics.median(self.values(figure))

    def quartiles(self, figure: str | None = None) -> tuple[float, float]:
        """Return the first and third quartiles of the same values."""
        values = self.values(figure)
        if len(values) < 2:
            return values[0], values[0]
        first, _, third = statistics.quantiles(values, n=4, method="inclusive")
        return first, third

    def values(self, figure: str | None = None) -> list[float]:
        if figure is None:
            return [sample.wall for sample in self.samples]
        return [sample.figures[figure] for sample in self.samples]

    def peak_rss_mib(self) -> float:
        """Return the median over runs of each run's peak resident set."""
        return statistics.median(s.max_rss_kib for s in self.samples) / 1024


def interleaved(count: int, rounds: int) -> Iterator[int]:
    """Yield command indices round by round, reversing every other round."""
    forward = list(range(count))
    for number in range(rounds):
        yield from forward if number % 2 == 0 else reversed(forward)


def base_environment(site: Path | None) -> dict[str, str]:
    """Return the harness's environment without Python settings, plus ``site``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PYTHON")
    }
    if site is not None:
        environment["PYTHONPATH"] = str(site)
    return environment


class Spawner:
    """Runs commands through the helper process; use it as a context manager.

    :param workdir: a scratch folder for the children's output and reports.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Spawner:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SPAWNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()  # the helper exits when its input ends
        process.wait()

    def run(self, command: Command, environment: Mapping[str, str]) -> Sample:
        """Run ``command`` once in a fresh process and return its figures.

        :raises BenchmarkError: the command exited with a non-zero status.
        """
        if command.prepare is not None:
            command.prepare()
        report = self.workdir / "report.txt"
        report.unlink(missing_ok=True)
        child_environment = {
            **environment,
            **command.environment,
            REPORT_VARIABLE: str(report),
        }

        wall, status, max_rss = self._request(command.argv, child_environment)

        if os.waitstatus_to_exitcode(status) != 0:
            raise BenchmarkError(self._failure(command, status))
        figures, modules = read_report(report)
        return Sample(wall, max_rss, figures, modules)

    def measure(
        self,
        commands: Sequence[Command],
        environment: Mapping[str, str],
        *,
        repeats: int,
        warmup: int = 1,
    ) -> list[Summary]:
        """Time ``commands`` interleaved; the warm-up rounds are not kept."""
        samples: list[list[Sample]] = [[] for _ in commands]
        for index in interleaved(len(commands), warmup):
            self.run(commands[index], environment)
        for index in interleaved(len(commands), repeats):
            samples[index].append(self.run(commands[index], environment))
        return [
            Summary(command.label, tuple(runs))
            for command, runs in zip(commands, samples, strict=True)
        ]

    def _request(
        self, argv: Sequence[str], environment: Mapping[str, str]
    ) -> tuple[float, int, int]:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise RuntimeError("use the Spawner as a context manager")
        message = (list(argv), dict(environment), str(self.workdir), *self._outputs())
        body = marshal.dumps(message)
        process.stdin.write(len(body).to_bytes(_LENGTH_BYTES, "big") + body)
        process.stdin.flush()

        header = process.stdout.read(_LENGTH_BYTES)
        if len(header) < _LENGTH_BYTES:
            raise BenchmarkError(f"the helper process {SPAWNER.name} died")
        body = process.stdout.read(int.from_bytes(header, "big"))
        answer: tuple[float, int, int] = marshal.loads(body)
        return answer

    def _outputs(self) -> tuple[str, str]:
        return str(self.workdir / "stdout.txt"), str(self.workdir / "stderr.txt")

    def _failure(self, command: Command, status: int) -> str:
        code = os.waitstatus_to_exitcode(status)
        stderr = Path(self._outputs()[1]).read_text(errors="replace").strip()
        return (
            f"{command.label!r} exited with status {code}: "
            f"{' '.join(command.argv)}\n{stderr[-2000:]}"
        )

    def last_stdout(self) -> str:
        """Return what the last command printed, to check it did the job."""
        return Path(self._outputs()[0]).read_text()


def read_report(path: Path) -> tuple[dict[str, float], frozenset[str]]:
    """Parse a child's report: ``figure NAME VALUE`` and ``module NAME`` lines."""
    if not path.exists():
        return {}, frozenset()
    figures: dict[str, float] = {}
    modules: set[str] = set()
    for line in path.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "figure":
            name, _, value = rest.partition(" ")
            figures[name] = float(value)
        elif kind == "module":
            modules.add(rest)
    return figures, frozenset(modules)


def empty_folder(folder: Path) -> Callable[[], None]:
    """Return a preparation that removes ``folder``, for cold-cache runs."""

    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    return prepare


def count_instructions(
    argv: Sequence[str], environment: Mapping[str, str], cwd: Path
) -> int:
    """Return how many instructions ``argv`` executes, as valgrind counts them.

    Unlike a time, the count barely moves with what else the machine is doing,
    so a ratio of counts shows what a noisy machine blurs.

    :raises BenchmarkError: valgrind is missing, or the command failed under it.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise BenchmarkError("valgrind is not installed; run without --instructions")
    completed = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=dict(environment),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    collected = re.search(r"Collected : (\d+)", completed.stderr)
    if completed.returncode != 0 or collected is None:
        raise BenchmarkError(
            f"{' '.join(argv)} failed under valgrind with status "
            f"{completed.returncode}:\n{completed.stderr[-2000:]}"
        )
    return int(collected.group(1))
