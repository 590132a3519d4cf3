"""What a chassis imports to open and run services."""

from __future__ import annotations

from _report import report

from bgservice_core import Config, ServiceRunner  # noqa: F401
from bgservice_core import open as open_backends  # noqa: F401

report()
