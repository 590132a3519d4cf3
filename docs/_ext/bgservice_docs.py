"""Pages that are generated while the docs build, so they cannot drift.

- ``<!-- error-examples -->`` in a page becomes a section per error class, with
  a message made by the class itself from example inputs. A class without an
  example is a build warning, so a new error cannot go undocumented.
- ``<!-- optional-include: PATH -->`` becomes an include of PATH (relative to
  the page) when the file exists, and a note saying how to make it otherwise:
  the benchmark results are written by a run of the benchmarks, not kept by hand.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

import bgservice_core
from bgservice_core import tenants
from bgservice_core._discovery import BackendEntry
from bgservice_core._settings import read_seconds
from bgservice_core.testing import (
    CheckResult,
    ConformanceError,
    ConformanceReport,
    Status,
    patched_environment,
)

logger = logging.getLogger(__name__)

_ERROR_MARKER = "<!-- error-examples -->"
_OPTIONAL_INCLUDE = re.compile(r"<!-- optional-include: (?P<path>\S+) -->")


def _heartbeat_entry() -> BackendEntry:
    return BackendEntry(
        name="heartbeat",
        value="bgservice_heartbeat",
        distribution="bgservice-heartbeat",
        version="0.1.0",
    )


def _setting_error() -> BaseException:
    with patched_environment({"BGSERVICE_HEARTBEAT_PERIOD": "ten"}):
        try:
            read_seconds("BGSERVICE_HEARTBEAT_PERIOD", 10.0)
        except bgservice_core.SettingError as err:
            return err
    raise AssertionError("read_seconds accepted 'ten'")


def _tenant_error() -> BaseException:
    try:
        tenants.check_slug("Acme Corp")
    except tenants.TenantError as err:
        return err
    raise AssertionError("check_slug accepted 'Acme Corp'")


def _conformance_error() -> BaseException:
    results = (
        CheckResult("entry point resolves", Status.PASSED, "'cleanup' (...)"),
        CheckResult("hook validates", Status.PASSED),
        CheckResult(
            "stop() drains promptly",
            Status.FAILED,
            "stop() did not return within 10s",
        ),
    )
    return ConformanceError(ConformanceReport("cleanup", results))


#: How to make an example of each error class, by qualified name.
EXAMPLES: dict[str, Callable[[], BaseException]] = {
    "InvalidBackendListError": lambda: bgservice_core.InvalidBackendListError(
        "heartbeat, credit-gate, heartbeat", ["heartbeat"]
    ),
    "UnknownBackendError": lambda: bgservice_core.UnknownBackendError(
        ["hearbeat"], ["credit-gate", "heartbeat"], {"hearbeat": ["heartbeat"]}
    ),
    "BackendConflictError": lambda: bgservice_core.BackendConflictError(
        "heartbeat",
        [
            "distribution bgservice-heartbeat 0.1.0: bgservice_heartbeat",
            "distribution acme-heartbeat 2.0: acme_heartbeat",
        ],
    ),
    "BackendLoadError": lambda: bgservice_core.BackendLoadError(
        _heartbeat_entry(),
        "import failed: ModuleNotFoundError: No module named 'bgservice_heartbeat'",
    ),
    "ServiceConstructionError": lambda: bgservice_core.ServiceConstructionError(
        "heartbeat", f"SettingError: {_setting_error()}"
    ),
    "ServiceStartError": lambda: bgservice_core.ServiceStartError(
        "credit-gate", "start() did not return within 10s", ["heartbeat"]
    ),
    "ServiceCrashedError": lambda: bgservice_core.ServiceCrashedError("heartbeat"),
    "SettingError": _setting_error,
    "TenantError": _tenant_error,
    "UnknownTenantError": lambda: tenants.UnknownTenantError("acme"),
    "ConformanceError": _conformance_error,
}


def error_classes() -> list[type[BaseException]]:
    """Every error class bgservice defines, base first, then by name."""
    found: list[type[BaseException]] = []
    pending: list[type[BaseException]] = [bgservice_core.BGServiceError]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("bgservice_core") and cls not in found:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    found.sort(key=lambda cls: (cls is not bgservice_core.BGServiceError, cls.__name__))
    return [*found, ConformanceError]


def _public_path(cls: type[BaseException]) -> str:
    if getattr(bgservice_core, cls.__name__, None) is cls:
        return f"bgservice_core.{cls.__name__}"
    module = cls.__module__.replace(
        "bgservice_core._conformance", "bgservice_core.testing"
    )
    return f"{module}.{cls.__name__}"


def error_section(cls: type[BaseException]) -> str:
    """One error class as Markdown: name, summary, bases, exit code, example."""
    path = _public_path(cls)
    summary = (inspect.getdoc(cls) or "").split("\n\n")[0]
    bases = ", ".join(f"`{base.__name__}`" for base in cls.__bases__)
    lines = [f"## `{cls.__name__}`", "", f"{{py:class}}`{path}`: {summary}", ""]
    lines.append(f"Derives from {bases}.")
    exit_code = getattr(cls, "exit_code", None)
    if exit_code is not None:
        lines[-1] += f" `bgservice run` exits with {int(exit_code)} ({exit_code.name})."

    make = EXAMPLES.get(cls.__name__)
    if cls is bgservice_core.BGServiceError:
        lines += ["", "It has no message of its own: catch it to catch them all."]
    elif make is None:
        logger.warning(
            "error class %s has no example message; add one to EXAMPLES in %s",
            path,
            __file__,
        )
    else:
        lines += ["", "Example message:", "", "```text", str(make()), "```"]
    return "\n".join(lines) + "\n"


def _expand(app: Sphinx, docname: str, source: list[str]) -> None:
    text = source[0]
    if _ERROR_MARKER in text:
        sections = "\n".join(error_section(cls) for cls in error_classes())
        text = text.replace(_ERROR_MARKER, sections)
    text = _OPTIONAL_INCLUDE.sub(lambda match: _include(app, docname, match), text)
    source[0] = text


def _include(app: Sphinx, docname: str, match: re.Match[str]) -> str:
    relative = match["path"]
    page = Path(app.env.doc2path(docname))
    # Re-read the page when the file appears or changes; a missing dependency
    # keeps the page out of date, so the note goes once the results exist.
    app.env.note_dependency(str(page.parent / relative))
    if (page.parent / relative).is_file():
        return f"```{{include}} {relative}\n```"
    return (
        f":::{{note}}\nNo results yet: `{relative}` is written by a benchmark "
        "run (`nox -s bench`).\n:::"
    )


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the source rewriting with Sphinx."""
    app.connect("source-read", _expand)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
