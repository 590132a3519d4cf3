"""bgservice: background services from plugin distributions, owned by a chassis.

A chassis builds a :class:`Config`, calls :func:`open` with a comma-separated
list of backend names, and runs the services it gets back, usually through a
:class:`ServiceRunner`. Backends are distributions that advertise a plugin in the
entry-point group ``bgservice.backends``.

Importing this package discovers nothing and imports no backend.
"""

from __future__ import annotations

from bgservice_core._contract import Config, Constructor, FailureHandler, Gate, Service
from bgservice_core._discovery import (
    BackendEntry,
    discover_backends,
    register,
    unregister,
)
from bgservice_core._errors import (
    ENTRY_POINT_GROUP,
    BackendConflictError,
    BackendLoadError,
    BGServiceError,
    ExitCode,
    InvalidBackendListError,
    ServiceConstructionError,
    ServiceCrashedError,
    ServiceStartError,
    SettingError,
    UnknownBackendError,
)
from bgservice_core._hookspec import hookimpl, hookspec
from bgservice_core._lifecycle import CrashPolicy, DrainReport, ServiceRunner
from bgservice_core._loop import LoopService
from bgservice_core._opening import open, open_by_name, parse_backend_names
from bgservice_core._settings import read_integer, read_seconds, read_text
from bgservice_core._version import __version__

__all__ = [
    "ENTRY_POINT_GROUP",
    "BGServiceError",
    "BackendConflictError",
    "BackendEntry",
    "BackendLoadError",
    "Config",
    "Constructor",
    "CrashPolicy",
    "DrainReport",
    "ExitCode",
    "FailureHandler",
    "Gate",
    "InvalidBackendListError",
    "LoopService",
    "Service",
    "ServiceConstructionError",
    "ServiceCrashedError",
    "ServiceRunner",
    "ServiceStartError",
    "SettingError",
    "UnknownBackendError",
    "__version__",
    "discover_backends",
    "hookimpl",
    "hookspec",
    "open",
    "open_by_name",
    "parse_backend_names",
    "read_integer",
    "read_seconds",
    "read_text",
    "register",
    "unregister",
]
