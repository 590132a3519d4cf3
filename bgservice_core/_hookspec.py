"""The pluggy hook specification a backend plugin implements.

A backend distribution advertises a plugin object (usually its module) in the
entry-point group ``bgservice.backends``. That object carries one function
marked with :data:`hookimpl`::

    from bgservice_core import hookimpl

    @hookimpl
    def bgservice_build_service(config):
        return MyService(config)
"""

from __future__ import annotations

import pluggy

from bgservice_core._contract import Config, Service

PROJECT_NAME = "bgservice"

#: Marks the functions of a backend plugin that implement a bgservice hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: The one hook a backend must implement.
CONSTRUCTOR_HOOK = "bgservice_build_service"


class BackendSpec:
    """The hooks of a bgservice backend plugin."""

    @hookspec(firstresult=True)
    def bgservice_build_service(self, config: Config) -> Service:  # type: ignore[empty-body]
        """Build this backend's service from the chassis' configuration.

        Read backend-specific settings from environment variables here and
        raise :class:`bgservice_core.SettingError` when one is invalid, so that
        a bad setting stops the chassis at startup rather than later.

        :param config: the configuration for this backend, with its own logger.
        :returns: a service that has not been started yet.
        """
