"""Make tests/unit importable as a plain folder so tests can share posture_helpers."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
