"""stevedore's ``NamedExtensionManager`` loads the named plugin, which builds its
service. Whether stevedore's entry-point cache is cold or warm is up to the
harness, which empties or keeps the cache folder."""

from __future__ import annotations

import logging
import sys
from typing import Any

from _report import report
from stevedore import NamedExtensionManager

from bgservice_core import Config


class NoGate:
    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        pass


name = sys.argv[1]
manager: NamedExtensionManager[Any] = NamedExtensionManager(
    "bgservice.backends", names=[name]
)
config = Config(logger=logging.getLogger("bench"), gate=NoGate(), node_id="bench")
service = manager[name].plugin.bgservice_build_service(config=config)
assert service is not None
report()
