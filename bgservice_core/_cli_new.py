"""``bgservice new``: scaffold a backend distribution."""

from __future__ import annotations

import shlex
from pathlib import Path

import click


@click.command("new")
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=(
        "The folder to create, or an empty one to fill; its parent must exist. "
        "Default: ./bgservice-NAME."
    ),
)
def new_command(name: str, directory: Path | None) -> None:
    """Create a backend distribution, ready to install and run.

    NAME is the backend name a backend list will select. The new distribution
    holds a working service with one setting, its entry point, and tests that
    run the conformance check; the output says what to do next.

    \b
    Examples:
      bgservice new cleanup
      bgservice new credit-gate --directory plugins/bgservice-credit-gate
    """
    from bgservice_core import _scaffold

    try:
        target = directory or _scaffold.default_directory(name)
        _scaffold.create_backend(name, target)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="NAME") from err
    except _scaffold.TargetDirectoryError as err:
        raise click.UsageError(str(err)) from err
    except OSError as err:
        # Whatever the file system refused: a path too long, a read-only place.
        reason = err.strerror or str(err)
        raise click.ClickException(
            f"cannot create the backend in {str(target)!r}: {reason}"
        ) from err

    click.echo(f"created backend {name!r} in {target}")
    for claimant in _scaffold.installed_claimants(name):
        click.echo(
            f"warning: backend {name!r} is already installed ({claimant}); "
            "installing this one as well makes the name a conflict",
            err=True,
        )
    click.echo(
        f"next:\n  cd {shlex.quote(str(target))}\n  pip install -e '.[test]'\n"
        f"  bgservice list\n  python -m pytest\n  bgservice run {name}"
    )
