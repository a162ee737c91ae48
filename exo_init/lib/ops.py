"""The control API's operations, listed once: name, whether it changes anything (then the caller
must be uid 0), and the org.exosphere.Core1 D-Bus methods that carry it (none: the private socket
only). PID 1's server (pid1/control.py), the D-Bus API (client/dbus_api.py), the bridge
(system/dbus_bridge.py) and exoctl all read this table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    name: str
    mutating: bool
    dbus: tuple[str, ...] = ()   # the Core1 methods for it; the first is the one exoctl calls


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("ping", False),
    Operation("info", False, ("Info",)),
    Operation("status", False, ("ListCapsules", "GetCapsule")),  # without a name / with one
    Operation("logs", False, ("Logs",)),
    Operation("subscribe", False),
    Operation("generations", False),
    Operation("events", False),
    Operation("start", True, ("Start",)),
    Operation("stop", True, ("Stop",)),
    Operation("restart", True, ("Restart",)),
    Operation("freeze", True, ("Freeze",)),
    Operation("thaw", True, ("Thaw",)),
    Operation("checkpoint", True),   # a CRUSH capsule checkpoints now (SIGUSR1 to its runtime)
    Operation("degrade", True),  # the Sentry: {"name", "reason"} ("" clears it)
    Operation("reload", True, ("Reload",)),
    Operation("poweroff", True, ("PowerOff",)),
    Operation("reboot", True, ("Reboot",)),
    Operation("switch", True),
    Operation("rollback", True),
)}
READ_ONLY = frozenset(name for name, op in OPERATIONS.items() if not op.mutating)
MUTATING = frozenset(name for name, op in OPERATIONS.items() if op.mutating)
SOCKET_ONLY = frozenset(name for name, op in OPERATIONS.items() if not op.dbus)
# D-Bus method -> the operation it carries.
BY_DBUS_METHOD: dict[str, Operation] = {method: op for op in OPERATIONS.values() for method in op.dbus}
