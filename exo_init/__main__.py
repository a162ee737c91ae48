from __future__ import annotations

from exo_init.pid1.main import main

main()
