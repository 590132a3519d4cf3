"""Development sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typing``."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typing", "tests"]
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
PLUGINS = sorted(str(path) for path in (ROOT / "plugins").iterdir() if path.is_dir())


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the core and every plugin, installed."""
    session.install("-e", ".[test]", *PLUGINS)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check formatting and lint rules with ruff."""
    session.install("ruff")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """Type-check the core and every plugin with mypy in strict mode."""
    session.install("mypy", "types-tabulate", "-e", ".[test]", *PLUGINS)
    session.run("mypy")
    for plugin in PLUGINS:
        packages = [p.name for p in Path(plugin).iterdir() if (p / "py.typed").exists()]
        for package in packages:
            session.run("mypy", "--strict", str(Path(plugin) / package))
