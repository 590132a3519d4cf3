"""Development sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typing``,
``nox -s docs``, ``nox -s bench`` and ``nox -s wheels``."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typing", "tests"]
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
PLUGINS = sorted(str(path) for path in (ROOT / "plugins").iterdir() if path.is_dir())


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the core and every plugin, installed."""
    _install_with_plugins(session, "-e", ".[test,docs]")
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
    _install_with_plugins(session, "mypy", "types-tabulate", "-e", ".[test]")
    session.run("mypy")
    for plugin in PLUGINS:
        packages = [p.name for p in Path(plugin).iterdir() if (p / "py.typed").exists()]
        for package in packages:
            session.run("mypy", "--strict", str(Path(plugin) / package))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site, with warnings and broken references as errors."""
    session.install("-e", ".[docs]")
    output = ROOT / "docs" / "_build" / "html"
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-n",
        "-E",
        "-b",
        "html",
        "docs",
        str(output),
    )
    session.log(f"the site is in {output}")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks and rewrite docs/_generated/benchmarks.md."""
    _install_with_plugins(session, "-e", _core_with_extra("bench"))
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def wheels(session: nox.Session) -> None:
    """Test what ships: the wheels alone, installed, through the CLI and conformance."""
    work = Path(session.create_tmp()).resolve()
    dist, run = work / "dist", work / "run"
    for folder in (dist, run):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()

    build = ["python", "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist)]
    session.run(*build, str(ROOT), *PLUGINS)
    session.install(*sorted(str(wheel) for wheel in dist.glob("*.whl")), "pytest")

    # From here on nothing of the source tree is on sys.path: the working
    # directory is an empty folder, and PYTHONPATH is cleared.
    session.chdir(run)
    env = {"PYTHONPATH": ""}
    session.run("python", "-c", _IMPORTED_FROM_WHEELS, *_packages(), env=env)
    session.run("bgservice", "list", env=env)
    session.run("bgservice", "list", "--check", env=env)
    session.run("python", "-m", "pytest", *_conformance_tests(run), env=env)
    _scaffold_and_test(session, run, env)


def _install_with_plugins(session: nox.Session, *requirements: str) -> None:
    """Install ``requirements`` and every plugin under plugins/ in one go.

    pip is upgraded first: the pip a new virtual environment gets on Python
    3.11 looks for the plugins' dependency, bgservice-core, on the index
    instead of taking the copy this same command installs from the checkout.
    """
    session.install("--upgrade", "pip")
    session.install(*requirements, *PLUGINS)


def _core_with_extra(extra: str) -> str:
    """The core's requirement, with ``extra`` if pyproject.toml declares it."""
    # pip refuses to resolve the plugins' bgservice-core requirement against
    # an editable core asked for with an extra that does not exist.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return f".[{extra}]" if extra in project.get("optional-dependencies", {}) else "."


#: Fails unless every package given is imported from the installed wheels.
_IMPORTED_FROM_WHEELS = """
import importlib, pathlib, sys, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
for name in sys.argv[1:]:
    origin = pathlib.Path(importlib.import_module(name).__file__).resolve()
    if not origin.is_relative_to(site):
        sys.exit(f"{name} was imported from {origin}, not from the wheels in {site}")
    print(f"{name}: {origin}")
"""


def _packages() -> list[str]:
    """The core's package and every plugin's, the folders with a py.typed."""
    folders = [ROOT, *map(Path, PLUGINS)]
    return [p.name for f in folders for p in f.iterdir() if (p / "py.typed").exists()]


def _conformance_tests(run: Path) -> list[str]:
    """Copy each plugin's tests into ``run``; return its conformance test files."""
    (run / "pytest.ini").write_text(
        "[pytest]\naddopts = --strict-markers -p no:cacheprovider\n"
        "filterwarnings = error\n"
    )
    selected = []
    for plugin in map(Path, PLUGINS):
        # The whole folder, since a conftest may import helpers kept beside it.
        target = shutil.copytree(plugin / "tests", run / plugin.name)
        selected += sorted(str(test) for test in target.glob("test_*_conformance.py"))
    return selected


def _scaffold_and_test(session: nox.Session, run: Path, env: dict[str, str]) -> None:
    """The template ships in the core's wheel: scaffold, install, test, list."""
    project = run / "bgservice-wheelcheck"
    session.run("bgservice", "new", "wheelcheck", "--directory", str(project), env=env)
    session.install(str(project))
    session.chdir(project)
    session.run("python", "-m", "pytest", env=env)
    session.chdir(run)
    session.run("bgservice", "list", "--check", env=env)
