"""PID 1: the code that runs inside exo_init (see exo_init/__init__.py for the layers)."""
