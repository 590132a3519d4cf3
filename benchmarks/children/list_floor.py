"""The floor for ``bgservice list --json``: the group's names, distributions
and versions, read with importlib-metadata directly, each METADATA parsed once."""

from __future__ import annotations

import json
from typing import Any

import importlib_metadata
from _report import report


def identity(entry_point: Any) -> dict[str, str]:
    metadata = entry_point.dist.metadata
    return {
        "name": entry_point.name,
        "distribution": metadata["Name"],
        "version": metadata["Version"],
    }


group = importlib_metadata.entry_points(group="bgservice.backends")
rows = sorted(map(identity, group), key=lambda row: row["name"])
print(json.dumps(rows, indent=2))
report()
