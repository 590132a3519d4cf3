"""Finding backends: installed entry points, and constructors registered in-process.

Discovery reads distribution metadata only; nothing here imports a backend.
Python's own rules decide which copy of a distribution counts: when the same
distribution is reachable through several ``sys.path`` entries, importlib-metadata
reports the first one, which is also the one ``import`` would load.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Iterable
from typing import Protocol

import importlib_metadata

from bgservice_core._contract import Constructor
from bgservice_core._errors import (
    ENTRY_POINT_GROUP,
    REGISTERED_IN_PROCESS,
    BackendConflictError,
    BackendLoadError,
)

logger = logging.getLogger(__name__)

#: The placeholder that means "no service" in a backend list.
NOP = "nop"

#: A backend name may not contain what the list syntax gives a meaning to.
_VALID_NAME = re.compile(r"[^\s,]+")

#: The metadata fields a BackendEntry carries, as lowercase header names.
_IDENTITY_FIELDS = ("name", "version", "summary")


class MetadataFiles(Protocol):
    """What discovery needs of a distribution: the text of its metadata files."""

    def read_text(self, filename: str) -> str | None:
        """Return the named file's text, or None if there is none."""


@dataclasses.dataclass(frozen=True)
class BackendEntry:
    """One place a backend name comes from.

    :param name: the backend name, as written in a backend list.
    :param value: the entry point's ``module:attribute``, or the qualified name
        of a constructor registered in-process.
    :param distribution: the distribution that advertises it.
    :param version: that distribution's version.
    :param summary: that distribution's one-line summary.
    """

    name: str
    value: str
    distribution: str
    version: str
    summary: str = ""
    entry_point: importlib_metadata.EntryPoint | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    constructor: Constructor | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def describe(self) -> str:
        """Say where this backend comes from, for messages."""
        if self.entry_point is None:
            return f"{self.name!r} ({REGISTERED_IN_PROCESS} {self.value})"
        return (
            f"{self.name!r} (entry point {self.value!r} in group "
            f"{ENTRY_POINT_GROUP!r}, distribution {self.distribution} {self.version})"
        )

    def claimant(self) -> str:
        """Say who offers this name, for a conflict message."""
        if self.entry_point is None:
            return f"{REGISTERED_IN_PROCESS}: {self.value}"
        return f"distribution {self.distribution} {self.version}: {self.value}"


_registry: dict[str, BackendEntry] = {}
_registry_lock = threading.Lock()


def register(name: str, constructor: Constructor) -> None:
    """Make ``constructor`` available as backend ``name`` in this process.

    Meant for embedding and tests; installed backends need no registration.

    :raises TypeError: the name is not a string, or the constructor is not
        callable.
    :raises ValueError: the name is not a valid backend name.
    :raises BackendConflictError: the name is already registered, or an
        installed distribution already advertises it.
    """
    check_backend_name(name)
    if not callable(constructor):
        raise TypeError(
            f"cannot register backend {name!r}: constructor {constructor!r} is not "
            "callable; pass a function or class that takes a Config"
        )
    entry = BackendEntry(
        name=name,
        value=_qualified_name(constructor),
        distribution=REGISTERED_IN_PROCESS,
        version="",
        constructor=constructor,
    )

    with _registry_lock:
        clashes = list(installed_entries(name))
        if name in _registry:
            clashes.append(_registry[name])
        if clashes:
            raise BackendConflictError(name, [c.claimant() for c in [*clashes, entry]])
        _registry[name] = entry
    logger.debug("registered backend %r in-process: %s", name, entry.value)


def unregister(name: str) -> None:
    """Forget a backend registered with :func:`register`; unknown names are ignored."""
    with _registry_lock:
        _registry.pop(name, None)


def check_backend_name(name: str) -> None:
    """Reject a name that a backend list could never select."""
    if not isinstance(name, str):
        raise TypeError(
            f"invalid backend name {name!r}: expected a str, got {type(name).__name__}"
        )
    if not _VALID_NAME.fullmatch(name) or name == NOP:
        raise ValueError(
            f"invalid backend name {name!r}: a name is a non-empty string without "
            f"whitespace or commas, and {NOP!r} is reserved for 'no service'"
        )


def backend_name_problem(name: str) -> str | None:
    """Say why a backend list could never select ``name``; None if it can."""
    try:
        check_backend_name(name)
    except ValueError as err:
        return str(err)
    return None


def installed_entries(name: str | None = None) -> Iterable[BackendEntry]:
    """Yield the installed entry points of the group, optionally of one name only.

    Only the distributions of matching entry points have their metadata read.
    """
    for entry_point in group_entry_points():
        if name is None or entry_point.name == name:
            yield _entry_from_entry_point(entry_point)


def registered_entries() -> list[BackendEntry]:
    """Return the backends registered in-process."""
    with _registry_lock:
        return list(_registry.values())


def discover_backends() -> dict[str, list[BackendEntry]]:
    """Return every available backend by name, sorted by name.

    A name with more than one entry is a conflict; its entries are sorted by
    distribution so the order does not depend on ``sys.path``.
    """
    by_name: dict[str, list[BackendEntry]] = {}
    for entry in [*installed_entries(), *registered_entries()]:
        claimants = by_name.setdefault(entry.name, [])
        if entry not in claimants:
            claimants.append(entry)
    return {name: sorted(by_name[name], key=_sort_key) for name in sorted(by_name)}


def resolve(
    name: str, installed: Iterable[importlib_metadata.EntryPoint]
) -> BackendEntry:
    """Return the one entry offering ``name``, among ``installed`` and the registry.

    :raises BackendConflictError: more than one distinct source offers it.
    :raises BackendLoadError: the name is one ``register()`` would refuse.
    """
    claimants: list[BackendEntry] = []
    for entry_point in installed:
        entry = _entry_from_entry_point(entry_point)
        if entry not in claimants:
            claimants.append(entry)
    with _registry_lock:
        if name in _registry:
            claimants.append(_registry[name])

    if len(claimants) > 1:
        raise BackendConflictError(name, [entry.claimant() for entry in claimants])
    # A name with whitespace inside survives the list syntax, but the same
    # rules apply to installed names as to registered ones.
    problem = backend_name_problem(name)
    if problem is not None:
        raise BackendLoadError(
            claimants[0], f"{problem}; its distribution must rename the entry point"
        )
    return claimants[0]


def group_entry_points() -> importlib_metadata.EntryPoints:
    """Return the group's entry points, reading each distribution's entry_points.txt."""
    return importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)


def _entry_from_entry_point(entry_point: importlib_metadata.EntryPoint) -> BackendEntry:
    distribution = entry_point.dist
    if distribution is None:
        name, version, summary = "(unknown distribution)", "", ""
    else:
        fields = identity_fields(distribution)
        name = fields.get("name") or "(unnamed distribution)"
        version = fields.get("version", "")
        summary = fields.get("summary", "")
    return BackendEntry(
        name=entry_point.name,
        value=entry_point.value,
        distribution=name,
        version=version,
        summary=summary,
        entry_point=entry_point,
    )


def identity_fields(distribution: MetadataFiles) -> dict[str, str]:
    """Return a distribution's Name, Version and Summary, keyed in lowercase.

    The values are those ``distribution.metadata`` gives, read from the header
    block of the same file, without the email parser behind ``metadata``:
    importing that parser costs more than the rest of an ``open``, and parsing
    every long description is most of the cost of listing hundreds of backends.
    """
    text = (
        distribution.read_text("METADATA")
        or distribution.read_text("PKG-INFO")
        or distribution.read_text("")  # an old egg-info file is its own metadata
        or ""
    )
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            break  # the headers end at the first empty line
        key, colon, value = line.partition(":")
        key = key.lower()
        if colon and key in _IDENTITY_FIELDS and key not in fields:
            fields[key] = value.lstrip(" \t")
    return fields


def _sort_key(entry: BackendEntry) -> tuple[str, str, str]:
    return (entry.distribution.lower(), entry.version, entry.value)


def _qualified_name(constructor: Constructor) -> str:
    module = getattr(constructor, "__module__", None) or "?"
    name = getattr(constructor, "__qualname__", None) or repr(constructor)
    return f"{module}:{name}"
