"""exo_init: the Exosphere OS PID 1 and capsule supervisor."""

from __future__ import annotations

__version__ = "0.1.0"
