"""The floor for ``open``: select the named entry point and load it."""

from __future__ import annotations

import sys

import importlib_metadata
from _report import report

(entry_point,) = importlib_metadata.entry_points(
    group="bgservice.backends", name=sys.argv[1]
)
plugin = entry_point.load()
report()
