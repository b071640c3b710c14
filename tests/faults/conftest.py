"""The fault suite imports the cluster harness (tests/) and its client helpers
(tests/integration/)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for directory in (TESTS, TESTS / "integration"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
