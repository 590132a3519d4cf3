"""Where a child script leaves its own figures and the modules it imported.

Every child imports this, the baselines as much as ours, so its small cost
falls on both sides of a ratio alike.
"""

from __future__ import annotations

import os
import sys


def report(**figures: float) -> None:
    """Write ``figures`` and the names in ``sys.modules`` for the harness."""
    path = os.environ.get("BGSERVICE_BENCH_REPORT")
    if not path:
        return
    lines = [f"figure {name} {value!r}" for name, value in figures.items()]
    lines += [f"module {name}" for name in sorted(sys.modules)]
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
