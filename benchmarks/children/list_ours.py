"""``bgservice list --json`` as the ``bgservice`` console script runs it, which
also leaves the harness the modules it imported: they show whether the answer
came from the discovery cache."""

from __future__ import annotations

import atexit
import sys

from _report import report

from bgservice_core._cli import main

atexit.register(report)
sys.argv[0] = "bgservice"
sys.exit(main())
