"""``bgservice_core.open`` of the one backend named on the command line."""

from __future__ import annotations

import logging
import sys

from _report import report

import bgservice_core


class NoGate:
    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        pass


config = bgservice_core.Config(
    logger=logging.getLogger("bench"), gate=NoGate(), node_id="bench.example"
)
services = bgservice_core.open(sys.argv[1], config)
assert len(services) == 1
report()
