"""pluggy's ``load_setuptools_entrypoints``, then the named plugin builds its service.

With ``--whole-group`` every plugin of the group is loaded, as a chassis that
lets pluggy discover its plugins does; otherwise pluggy's ``name`` filter picks
the one named.
"""

from __future__ import annotations

import logging
import sys

import pluggy
from _report import report

from bgservice_core import Config
from bgservice_core._hookspec import BackendSpec


class NoGate:
    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        pass


name = sys.argv[1]
manager = pluggy.PluginManager("bgservice")
manager.add_hookspecs(BackendSpec)
only = None if "--whole-group" in sys.argv else name
manager.load_setuptools_entrypoints("bgservice.backends", name=only)
config = Config(logger=logging.getLogger("bench"), gate=NoGate(), node_id="bench")
plugin = manager.get_plugin(name)
service = plugin.bgservice_build_service(config=config)  # type: ignore[union-attr]
assert service is not None
report()
