"""The errors open() raises, and what their messages tell an operator."""

from __future__ import annotations

import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import bgservice_core
from bgservice_core import (
    BackendLoadError,
    Config,
    ExitCode,
    ServiceConstructionError,
    SettingError,
    UnknownBackendError,
)
from tests.distributions import WELL_BEHAVED_MODULE, install_distribution

GROUP_AND = "in group 'bgservice.backends', distribution"


@pytest.fixture
def only_site_dir(site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``site_dir``, with the distributions of the environment hidden."""
    hidden = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in hidden])
    return site_dir


def install_backend(
    site: Path,
    name: str,
    source: str,
    value: str = "",
) -> Path:
    """Install ``<name>-dist`` 1.0 offering ``<name>_mod`` as ``name``."""
    module = f"{name}_mod"
    install_distribution(
        site,
        f"{name}-dist",
        entry_points={name: value or module},
        modules={f"{module}.py": source},
    )
    return site / f"{module}.py"


def load_failure(name: str, config: Config) -> BackendLoadError:
    """Open backend ``name`` and return the BackendLoadError it raises."""
    with pytest.raises(BackendLoadError) as caught:
        bgservice_core.open(name, config)
    return caught.value


def construction_failure(
    name: str,
    config: Config,
) -> ServiceConstructionError:
    """Open backend ``name``; return the ServiceConstructionError it raises."""
    with pytest.raises(ServiceConstructionError) as caught:
        bgservice_core.open(name, config)
    return caught.value


# -- unknown names ------------------------------------------------------------


def test_every_unknown_name_is_reported_at_once(
    only_site_dir: Path, config: Config
) -> None:
    """All unknown names share one error, suggesting close and case matches."""
    for name in ("credit-gate", "heartbeat"):
        install_backend(only_site_dir, name, WELL_BEHAVED_MODULE)

    with pytest.raises(UnknownBackendError) as caught:
        bgservice_core.open("heartbeat, hartbeat, Credit-Gate, zzz", config)

    error = caught.value
    assert error.names == ("hartbeat", "Credit-Gate", "zzz")
    assert error.available == ("credit-gate", "heartbeat")
    assert error.suggestions == {
        "hartbeat": ["heartbeat"],
        "Credit-Gate": ["credit-gate"],
        "zzz": [],
    }
    assert str(error) == (
        "unknown backends in the background service list:\n"
        "  'hartbeat' (did you mean 'heartbeat'?)\n"
        "  'Credit-Gate' (did you mean 'credit-gate'?)\n"
        "  'zzz'\n"
        "available backends: credit-gate, heartbeat"
    )
    assert error.exit_code is ExitCode.CONFIG_ERROR


def test_underscore_for_dash_is_unknown_but_suggested(
    only_site_dir: Path, config: Config
) -> None:
    """'credit_gate' does not select 'credit-gate', but suggests it."""
    install_backend(only_site_dir, "credit-gate", WELL_BEHAVED_MODULE)

    with pytest.raises(UnknownBackendError) as caught:
        bgservice_core.open("credit_gate", config)

    assert str(caught.value) == (
        "unknown backend in the background service list:\n"
        "  'credit_gate' (did you mean 'credit-gate'?)\n"
        "available backends: credit-gate"
    )


def test_unknown_with_nothing_installed(
    only_site_dir: Path,
    config: Config,
) -> None:
    """With no backend installed, the message says so and names the group."""
    with pytest.raises(UnknownBackendError) as caught:
        bgservice_core.open("heartbeat", config)

    assert caught.value.available == ()
    assert str(caught.value) == (
        "unknown backend in the background service list:\n"
        "  'heartbeat'\n"
        "no backends are installed in the entry-point group "
        "'bgservice.backends': install a backend distribution, or remove "
        "these names from the list"
    )


# -- backends that cannot be loaded -------------------------------------------


def test_module_raising_on_import(site_dir: Path, config: Config) -> None:
    """The message names backend, distribution, entry point, error, line."""
    source = "x = 1\nraise RuntimeError('boom')\n"
    path = install_backend(site_dir, "raiser", source)

    error = load_failure("raiser", config)

    assert str(error) == (
        f"cannot load backend 'raiser' (entry point 'raiser_mod' {GROUP_AND} "
        f"raiser-dist 1.0): import failed: RuntimeError: boom (at {path}:2)"
    )
    assert isinstance(error.__cause__, RuntimeError)
    assert str(error.__cause__) == "boom"
    assert error.entry.distribution == "raiser-dist"
    assert error.exit_code is ExitCode.LOAD_ERROR


def test_missing_module(site_dir: Path, config: Config) -> None:
    """An entry point naming a module that is not there is a load error."""
    entry_points = {"ghost": "ghost_mod"}
    install_distribution(site_dir, "ghost-dist", entry_points=entry_points)

    error = load_failure("ghost", config)

    assert str(error) == (
        f"cannot load backend 'ghost' (entry point 'ghost_mod' {GROUP_AND} "
        "ghost-dist 1.0): import failed: ModuleNotFoundError: No module named "
        "'ghost_mod'"
    )
    assert isinstance(error.__cause__, ModuleNotFoundError)


def test_missing_attribute(site_dir: Path, config: Config) -> None:
    """An entry point naming an attribute the module lacks is a load error."""
    value = "hollow_mod:nope"
    install_backend(site_dir, "hollow", WELL_BEHAVED_MODULE, value=value)

    error = load_failure("hollow", config)

    assert str(error) == (
        "cannot load backend 'hollow' (entry point 'hollow_mod:nope' "
        f"{GROUP_AND} hollow-dist 1.0): import failed: AttributeError: module "
        "'hollow_mod' has no attribute 'nope'"
    )
    assert isinstance(error.__cause__, AttributeError)


def test_misspelled_hook(site_dir: Path, config: Config) -> None:
    """A hook the spec does not know is named in the message."""
    source = """
        from bgservice_core import hookimpl

        @hookimpl
        def bgservice_build_servce(config):
            return None
    """
    path = install_backend(site_dir, "typo", source)

    error = load_failure("typo", config)

    assert str(error) == (
        f"cannot load backend 'typo' (entry point 'typo_mod' {GROUP_AND} "
        "typo-dist 1.0): hook validation failed: unknown hook "
        "'bgservice_build_servce' in plugin <module 'typo_mod' from "
        f"'{path}'>; a backend implements exactly one hook, "
        "'def bgservice_build_service(config)'"
    )


def test_hook_with_an_extra_argument(site_dir: Path, config: Config) -> None:
    """A hook asking for an argument the spec lacks is a load error."""
    source = """
        from bgservice_core import hookimpl

        @hookimpl
        def bgservice_build_service(config, database):
            return None
    """
    install_backend(site_dir, "greedy", source)

    error = load_failure("greedy", config)

    assert str(error) == (
        f"cannot load backend 'greedy' (entry point 'greedy_mod' {GROUP_AND} "
        "greedy-dist 1.0): hook validation failed: Plugin 'greedy' for hook "
        "'bgservice_build_service'; hookimpl definition: "
        "bgservice_build_service(config, database); Argument(s) "
        "{'database'} are declared in the hookimpl but can not be found in "
        "the hookspec; a backend implements exactly one hook, "
        "'def bgservice_build_service(config)'"
    )


@pytest.mark.parametrize(
    "source",
    [
        "x = 1\n",
        # Right name, but unmarked: pluggy does not see it as a hook.
        "def bgservice_build_service(config):\n    return None\n",
    ],
)
def test_plugin_without_the_hook(
    site_dir: Path,
    config: Config,
    source: str,
) -> None:
    """A plugin with no hook is a load error that says how to add one."""
    install_backend(site_dir, "empty", source)

    error = load_failure("empty", config)

    assert str(error) == (
        f"cannot load backend 'empty' (entry point 'empty_mod' {GROUP_AND} "
        "empty-dist 1.0): 'empty_mod' implements no 'bgservice_build_service' "
        "hook; define 'def bgservice_build_service(config)' there and mark it "
        "with @bgservice_core.hookimpl"
    )


@pytest.mark.parametrize(
    ("call", "code"),
    [("sys.exit()", "None"), ("sys.exit(3)", "3")],
)
def test_module_exiting_on_import(
    site_dir: Path, config: Config, call: str, code: str
) -> None:
    """A module that calls sys.exit() while imported cannot end the chassis."""
    path = install_backend(site_dir, "quitter", f"import sys\n{call}\n")

    error = load_failure("quitter", config)

    assert str(error) == (
        "cannot load backend 'quitter' (entry point 'quitter_mod' "
        f"{GROUP_AND} quitter-dist 1.0): import failed: SystemExit: "
        f"sys.exit({code}) was called (at {path}:2)"
    )
    assert isinstance(error.__cause__, SystemExit)


def test_a_failed_load_poisons_nothing(site_dir: Path, config: Config) -> None:
    """After a failure other backends open, and the broken one fails again."""
    install_backend(site_dir, "raiser", "raise RuntimeError('boom')\n")
    typo = "import bgservice_core as c\n@c.hookimpl\ndef bgservice_b(): pass\n"
    install_backend(site_dir, "typo", typo)
    install_backend(site_dir, "good", WELL_BEHAVED_MODULE)

    first = [load_failure(name, config) for name in ("raiser", "typo")]
    services = bgservice_core.open("good", config)
    again = [load_failure(name, config) for name in ("raiser", "typo")]

    assert len(services) == 1
    assert [str(error) for error in again] == [str(error) for error in first]
    assert "raiser_mod" not in sys.modules


# -- constructors that fail ---------------------------------------------------

HOOK_RETURNING = """
    from bgservice_core import hookimpl, read_seconds

    class Half:
        def start(self):
            pass

        stop = "not a method"

        def __repr__(self):
            return "Half()"

    @hookimpl
    def bgservice_build_service(config):
        return {result}
"""
#: The line of HOOK_RETURNING's module that computes the result.
RESULT_LINE = 1 + textwrap.dedent(HOOK_RETURNING).lstrip().splitlines().index(
    "    return {result}"
)


def test_constructor_raising(site_dir: Path, config: Config) -> None:
    """A constructor's exception is chained, with the line it came from."""
    source = HOOK_RETURNING.format(result="open('/nonexistent/x').read()")
    path = install_backend(site_dir, "faulty", source)

    error = construction_failure("faulty", config)

    assert str(error) == (
        "backend 'faulty' could not build its service: FileNotFoundError: "
        "[Errno 2] No such file or directory: '/nonexistent/x' "
        f"(at {path}:{RESULT_LINE})"
    )
    assert isinstance(error.__cause__, FileNotFoundError)
    assert error.backend == "faulty"
    assert error.exit_code is ExitCode.LOAD_ERROR


def test_setting_error_is_carried_through(
    site_dir: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SettingError's message is kept, located in the backend's code."""
    source = HOOK_RETURNING.format(result="read_seconds('FAULTY_PERIOD', 5)")
    path = install_backend(site_dir, "faulty", source)
    monkeypatch.setenv("FAULTY_PERIOD", "soon")

    error = construction_failure("faulty", config)

    assert str(error) == (
        "backend 'faulty' could not build its service: SettingError: "
        "FAULTY_PERIOD='soon' is invalid: expected a positive number of "
        f"seconds, such as 5 (at {path}:{RESULT_LINE})"
    )
    assert isinstance(error.__cause__, SettingError)
    assert error.__cause__.variable == "FAULTY_PERIOD"


def test_constructor_returning_none(site_dir: Path, config: Config) -> None:
    """A hook returning None names that problem, not an internal TypeError."""
    install_backend(site_dir, "absent", HOOK_RETURNING.format(result="None"))

    error = construction_failure("absent", config)

    assert str(error) == (
        "backend 'absent' could not build its service: its constructor "
        "returned None; it must return a service, an object with start() and "
        "stop() methods"
    )


@pytest.mark.parametrize(
    ("result", "described", "missing"),
    [
        ("'a', 'b'", "('a', 'b') of type tuple", "start() or stop()"),
        ("Half()", "Half() of type Half", "stop()"),
    ],
)
def test_constructor_returning_no_service(
    site_dir: Path,
    config: Config,
    result: str,
    described: str,
    missing: str,
) -> None:
    """An object lacking start() or stop() is named with what it lacks."""
    install_backend(site_dir, "odd", HOOK_RETURNING.format(result=result))

    error = construction_failure("odd", config)

    assert str(error) == (
        "backend 'odd' could not build its service: its constructor "
        f"returned {described}, which has no callable {missing}; a service "
        "needs start() and stop()"
    )


def test_constructor_calling_sys_exit(config: Config) -> None:
    """A constructor calling sys.exit() causes a construction error."""

    def quitting(config: Config) -> bgservice_core.Service:
        sys.exit(2)

    bgservice_core.register("quitting", quitting)
    exit_line = quitting.__code__.co_firstlineno + 1

    error = construction_failure("quitting", config)

    assert str(error) == (
        "backend 'quitting' could not build its service: SystemExit: "
        f"sys.exit(2) was called (at {__file__}:{exit_line})"
    )
    assert isinstance(error.__cause__, SystemExit)
