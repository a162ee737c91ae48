"""CRUSH's tests keep no state between runs: hypothesis writes no example database into the tree."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("crush", database=None)
settings.load_profile("crush")
