"""The floor for importing bgservice_core: the two libraries it is built on."""

from __future__ import annotations

import importlib_metadata  # noqa: F401
import pluggy  # noqa: F401
from _report import report

report()
