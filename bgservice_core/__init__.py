"""bgservice: background services from plugin distributions, owned by a chassis.

A chassis builds a :class:`Config`, calls :func:`open` with a comma-separated
list of backend names, and runs the services it gets back, usually through a
:class:`ServiceRunner`. Backends are distributions that advertise a plugin in the
entry-point group ``bgservice.backends``.

Importing this package discovers nothing and imports no backend; each public
name is imported from its module when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bgservice_core._version import __version__

if TYPE_CHECKING:
    from bgservice_core._contract import (
        Config,
        Constructor,
        FailureHandler,
        Gate,
        Service,
    )
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
else:
    import importlib

    # Each public name is imported on first use, from the module defining it,
    # so a chassis pays only for what it uses and ``bgservice --help`` pays for
    # none of it (see benchmarks/). Type checkers read the imports above.
    def __getattr__(name: str) -> object:
        module = _DEFINED_IN.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


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

#: The private module that defines each public name, for ``__getattr__``.
_DEFINED_IN = {
    name: module
    for module, names in {
        "_contract": ("Config", "Constructor", "FailureHandler", "Gate", "Service"),
        "_discovery": ("BackendEntry", "discover_backends", "register", "unregister"),
        "_errors": (
            "ENTRY_POINT_GROUP",
            "BGServiceError",
            "BackendConflictError",
            "BackendLoadError",
            "ExitCode",
            "InvalidBackendListError",
            "ServiceConstructionError",
            "ServiceCrashedError",
            "ServiceStartError",
            "SettingError",
            "UnknownBackendError",
        ),
        "_hookspec": ("hookimpl", "hookspec"),
        "_lifecycle": ("CrashPolicy", "DrainReport", "ServiceRunner"),
        "_loop": ("LoopService",),
        "_opening": ("open", "open_by_name", "parse_backend_names"),
        "_settings": ("read_integer", "read_seconds", "read_text"),
    }.items()
    for name in names
}
