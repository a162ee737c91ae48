"""CoreCaps: the small capsule tools that replace ls/cat/ps/sh (see the Scoped HAL issue)."""

from __future__ import annotations
