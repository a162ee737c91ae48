"""The programs of the system capsules; they reach PID 1 only through the control API."""
