"""Turning a backend list such as ``"heartbeat, credit-gate"`` into services.

Opening happens in three phases, so that a mistake anywhere in the list is
reported before any backend code runs:

1. parse the list and resolve every name against metadata (nothing imported);
2. import each selected backend and validate its hooks;
3. call each backend's constructor with a configuration of its own.

Names match exactly: case matters, and ``-`` and ``_`` are different characters.
"""

from __future__ import annotations

import collections
import functools
import importlib
import logging
import os
import reprlib
import traceback
from collections.abc import Callable, Sequence

import pluggy

from bgservice_core import _discovery_cache
from bgservice_core._contract import Config, Constructor, Service
from bgservice_core._discovery import (
    NOP,
    BackendEntry,
    installed_entry_points,
    registered_entries,
    resolve,
)
from bgservice_core._errors import (
    BackendLoadError,
    InvalidBackendListError,
    ServiceConstructionError,
    UnknownBackendError,
)
from bgservice_core._hookspec import CONSTRUCTOR_HOOK, PROJECT_NAME, BackendSpec

logger = logging.getLogger(__name__)


def parse_backend_names(text: str) -> list[str]:
    """Split a comma-separated backend list into names, in order.

    Whitespace around names, empty entries and ``nop`` are ignored.

    :raises InvalidBackendListError: a name appears more than once.
    """
    names = [part.strip() for part in text.split(",")]
    names = [name for name in names if name and name != NOP]

    counts = collections.Counter(names)
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        raise InvalidBackendListError(text, repeated)
    return names


def open(names: str, config: Config) -> list[Service]:
    """Build the services named in the comma-separated list ``names``, in order.

    An empty list (or one of only ``nop``) returns no services without looking
    at what is installed. Every selected backend is resolved before any is
    imported, and only the selected ones are imported.

    :param names: e.g. ``"heartbeat, credit-gate"``.
    :param config: the chassis' configuration; each backend gets a copy with a
        logger named after it.
    :raises TypeError: ``names`` is not a string, e.g. a list.
    :raises SettingError: ``BGSERVICE_DISCOVERY_CACHE`` or ``BGSERVICE_CACHE_DIR``
        is malformed, checked even when the list is empty.
    :raises InvalidBackendListError: a name is listed twice.
    :raises UnknownBackendError: names that nothing provides (all of them).
    :raises BackendConflictError: two distributions provide one selected name.
    :raises BackendLoadError: a selected backend fails to import or validate.
    :raises ServiceConstructionError: a constructor raises or returns no service.
    """
    return list(open_by_name(names, config).values())


def open_by_name(names: str, config: Config) -> dict[str, Service]:
    """Like :func:`open`, but return the services keyed by backend name, in order."""
    if not isinstance(names, str):
        raise TypeError(
            f"names must be a comma-separated string such as 'heartbeat, "
            f"credit-gate', not {type(names).__name__} {reprlib.repr(names)}; "
            "join a list first: ', '.join(names)"
        )
    # The discovery settings are checked even when nothing is selected, so
    # that a mistake in them shows on the first boot, not on the day a
    # backend is named.
    _discovery_cache.cache_directory()
    selected = resolve_backends(parse_backend_names(names))
    constructors = [(entry.name, load_constructor(entry)) for entry in selected]
    return {
        name: build_service(name, constructor, config)
        for name, constructor in constructors
    }


def resolve_backends(names: Sequence[str]) -> list[BackendEntry]:
    """Find the source of every name, reporting all unknown names at once."""
    if not names:
        return []

    installed = installed_entry_points()
    registered = {entry.name for entry in registered_entries()}
    available = {entry_point.name for entry_point in installed} | registered

    unknown = [name for name in names if name not in available]
    if unknown:
        suggestions = {name: _close_matches(name, available) for name in unknown}
        raise UnknownBackendError(unknown, available, suggestions)

    # Only the selected names' distributions have their METADATA read.
    return [
        resolve(name, [ep.entry() for ep in installed if ep.name == name])
        for name in names
    ]


def load_constructor(entry: BackendEntry) -> Constructor:
    """Import a backend and return its validated constructor.

    :raises BackendLoadError: the import failed, or the plugin's hooks are wrong.
    """
    if entry.constructor is not None:
        return entry.constructor

    try:
        plugin = entry.load()
    except (Exception, SystemExit) as err:
        raise BackendLoadError(entry, f"import failed: {_describe(err)}") from err

    logger.debug("imported backend %s", entry.describe())
    return _validated_hook(entry, plugin)


def build_service(name: str, constructor: Constructor, config: Config) -> Service:
    """Call ``constructor`` with a configuration for ``name`` and check the result.

    :raises ServiceConstructionError: it raised, or returned no service.
    """
    try:
        service = constructor(config.for_backend(name))
    except (Exception, SystemExit) as err:
        # A constructor that calls sys.exit() must not end the chassis silently.
        raise ServiceConstructionError(name, _describe(err)) from err

    problem = _service_problem(service)
    if problem is not None:
        raise ServiceConstructionError(name, problem)
    return service


def _service_problem(service: object) -> str | None:
    if service is None:
        return (
            "its constructor returned None; it must return a service, an "
            "object with start() and stop() methods"
        )
    missing = [
        f"{method}()"
        for method in ("start", "stop")
        if not callable(getattr(service, method, None))
    ]
    if not missing:
        return None
    return (
        f"its constructor returned {reprlib.repr(service)} of type "
        f"{type(service).__qualname__}, which has no callable "
        f"{' or '.join(missing)}; a service needs start() and stop()"
    )


def _validated_hook(entry: BackendEntry, plugin: object) -> Constructor:
    # A manager per backend keeps one plugin's bad hooks from affecting another.
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(BackendSpec)
    try:
        manager.register(plugin, name=entry.name)
        manager.check_pending()
    except (pluggy.PluginValidationError, ValueError) as err:
        # pluggy spreads its explanation over lines; a reason is one line.
        details = "; ".join(str(err).splitlines())
        raise BackendLoadError(
            entry,
            f"hook validation failed: {details}; a backend implements exactly "
            f"one hook, 'def {CONSTRUCTOR_HOOK}(config)'",
        ) from err

    hook = manager.hook.bgservice_build_service
    if not hook.get_hookimpls():
        raise BackendLoadError(
            entry,
            f"{entry.value!r} implements no {CONSTRUCTOR_HOOK!r} hook; define "
            f"'def {CONSTRUCTOR_HOOK}(config)' there and mark it with "
            "@bgservice_core.hookimpl",
        )
    return _hook_constructor(hook)


def _hook_constructor(hook: pluggy.HookCaller) -> Callable[[Config], Service]:
    def construct(config: Config) -> Service:
        # A None result is reported by build_service, as for any constructor.
        return hook(config=config)  # type: ignore[no-any-return]

    return construct


def _close_matches(name: str, available: set[str]) -> list[str]:
    by_lowercase: dict[str, str] = {}
    for candidate in sorted(available):
        by_lowercase.setdefault(candidate.lower(), candidate)
    if name.lower() in by_lowercase:
        return [by_lowercase[name.lower()]]
    # Imported on use: only a mistyped name needs it, not every chassis start.
    import difflib

    return difflib.get_close_matches(name, sorted(available), n=3, cutoff=0.6)


def _describe(err: BaseException) -> str:
    """Name an exception's type and message, and the backend line it came from."""
    message = str(err)
    if isinstance(err, SystemExit):
        # str(SystemExit()) is empty, which would leave the reason blank.
        message = f"sys.exit({err.code!r}) was called"
    text = f"{type(err).__name__}: {message}"

    frames = [
        frame
        for frame in traceback.extract_tb(err.__traceback__)
        if not _is_machinery(frame.filename)
    ]
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def _is_machinery(filename: str) -> bool:
    return filename.startswith("<frozen ") or filename.startswith(_machinery_paths())


@functools.cache
def _machinery_paths() -> tuple[str, ...]:
    """Name the code between bgservice and a backend, where no failure starts.

    A failure's location is the backend line that called into this code. Worked
    out on the first failure, so that a start without one imports nothing more.
    """
    import pkgutil

    import importlib_metadata

    folders = (
        os.path.dirname(str(module_file)) + os.sep
        for module_file in (
            __file__,
            importlib.__file__,
            importlib_metadata.__file__,
            pluggy.__file__,
        )
    )
    return (*folders, str(pkgutil.__file__))
