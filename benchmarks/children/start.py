"""Start N services whose ``start()`` returns at once, through ServiceRunner,
and, for comparison, by calling each ``start()`` directly."""

from __future__ import annotations

import sys
import time

from _report import report

from bgservice_core import ServiceRunner


class StartsAtOnce:
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


count = int(sys.argv[1])
direct = [StartsAtOnce() for _ in range(count)]
began = time.perf_counter()
for service in direct:
    service.start()
direct_seconds = time.perf_counter() - began

runner = ServiceRunner()
services = {f"service-{number}": StartsAtOnce() for number in range(count)}
began = time.perf_counter()
runner.start(services)
start_seconds = time.perf_counter() - began

runner.drain(timeout=60)
report(start=start_seconds, direct=direct_seconds)
