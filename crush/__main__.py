"""`python3 -m crush`: the crush command (crush/cli.py)."""

from __future__ import annotations

import sys

from crush.cli import main

sys.exit(main())
