from __future__ import annotations

from exo_init.main import main

main()
