"""Drain N started services whose ``stop()`` takes 200 ms each, with ServiceRunner."""

from __future__ import annotations

import sys
import threading
import time

from _report import report

from bgservice_core import ServiceRunner

STOP_SECONDS = 0.2


class SlowToStop:
    def start(self) -> None:
        pass

    def stop(self) -> None:
        time.sleep(STOP_SECONDS)


count = int(sys.argv[1])
runner = ServiceRunner()
runner.start({f"service-{number}": SlowToStop() for number in range(count)})

began = time.perf_counter()
outcome = runner.drain(timeout=60)
drain_seconds = time.perf_counter() - began

if len(outcome.stopped) != count:
    sys.exit(f"expected {count} stopped services: {outcome.summary()}")

# The least any drain could do: one plain thread per stop(), all joined.
threads = [threading.Thread(target=SlowToStop().stop) for _ in range(count)]
began = time.perf_counter()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
threads_seconds = time.perf_counter() - began

report(drain=drain_seconds, threads=threads_seconds)
