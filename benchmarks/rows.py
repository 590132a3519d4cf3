"""A line of the table: ours against one baseline, the ratio and the verdict."""

from __future__ import annotations

import dataclasses
import statistics

from benchmarks.harness import Summary

#: The sign after a ratio.
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table: ours against one baseline, in one environment."""

    case: str
    environment: str
    ours: str
    ours_ms: float
    baseline: str
    baseline_ms: float | None
    ratio: float | None
    net_ratio: float | None
    target: float | None
    verdict: str
    ours_rss_mib: float | None = None
    baseline_rss_mib: float | None = None
    note: str = ""
    ours_quartiles_ms: tuple[float, float] | None = None
    baseline_quartiles_ms: tuple[float, float] | None = None
    ratio_of_medians: float | None = None
    ours_samples_ms: tuple[float, ...] = ()
    baseline_samples_ms: tuple[float, ...] = ()


def compare(
    case: str,
    environment: str,
    ours: Summary,
    baseline: Summary,
    *,
    target: float | None,
    startup: Summary | None = None,
    note: str = "",
) -> Row:
    """Return the row comparing the wall times of two commands, round by round.

    The ratio is the median of each round's ratio: the two runs of a round are
    next to each other in time, so a slow spell of the machine slows both.
    """
    ratio = paired_ratio(ours, baseline)
    net_ratio = None if startup is None else paired_ratio(ours, baseline, startup)
    return Row(
        case=case,
        environment=environment,
        ours=ours.label,
        ours_ms=ours.median() * 1000,
        baseline=baseline.label,
        baseline_ms=baseline.median() * 1000,
        ratio=ratio,
        net_ratio=net_ratio,
        target=target,
        verdict=verdict(ratio, target),
        ours_rss_mib=ours.peak_rss_mib(),
        baseline_rss_mib=baseline.peak_rss_mib(),
        note=note,
        ours_quartiles_ms=milliseconds(ours.quartiles()),
        baseline_quartiles_ms=milliseconds(baseline.quartiles()),
        ratio_of_medians=ours.median() / baseline.median(),
        ours_samples_ms=tuple(value * 1000 for value in ours.values()),
        baseline_samples_ms=tuple(value * 1000 for value in baseline.values()),
    )


def paired_ratio(
    ours: Summary, baseline: Summary, startup: Summary | None = None
) -> float:
    """Return the median over rounds of ours / baseline, less ``startup`` if given."""
    rounds = zip(ours.values(), baseline.values(), strict=True)
    if startup is None:
        return statistics.median(mine / theirs for mine, theirs in rounds)
    return statistics.median(
        (mine - empty) / max(theirs - empty, 1e-9)
        for (mine, theirs), empty in zip(rounds, startup.values(), strict=True)
    )


def verdict(ratio: float | None, target: float | None) -> str:
    """Say whether ``ratio`` meets ``target``; without a target, it is reported."""
    if target is None or ratio is None:
        return "reported"
    return "met" if ratio <= target else "MISSED"


def not_measured(case: str, reason: str) -> Row:
    """Return the row of a case that could not be measured, saying why."""
    return Row(
        case=case,
        environment="",
        ours="",
        ours_ms=float("nan"),
        baseline="",
        baseline_ms=None,
        ratio=None,
        net_ratio=None,
        target=None,
        verdict=f"not measured: {reason}",
    )


def milliseconds(pair: tuple[float, float]) -> tuple[float, float]:
    """Convert a pair of seconds to milliseconds."""
    return pair[0] * 1000, pair[1] * 1000
