"""The org.exosphere.Core1 D-Bus API: names, the introspection XML, and how its calls and errors map
onto the private control socket's operations. Shared by the bridge (dbus_bridge.py) and exoctl, and
free of D-Bus imports so that importing it costs nothing.

Data: every structured value is a JSON string (D-Bus type "s") holding exactly what the private
control socket returns for the same operation, so `exoctl --json` prints the same document over
either transport. (a{sv} would need a schema per field and a second encoding to keep in step.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exo_init.lib import ops

BUS_NAME = "org.exosphere.Core1"
OBJECT_PATH = "/org/exosphere/Core1"
INTERFACE = "org.exosphere.Core1"
ERROR_PREFIX = "org.exosphere.Error."
# The control socket's error names that keep their name on D-Bus (org.exosphere.Error.NAME).
ERROR_NAMES = ("NoSuchCapsule", "AccessDenied", "InvalidManifest", "Failed", "BadRequest", "UnknownOperation")
# The bus's own errors that mean "nobody serves org.exosphere.Core1": fall back to the socket.
UNREACHABLE_ERRORS = frozenset({
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoServer",
    "org.freedesktop.DBus.Error.Disconnected",
    "org.freedesktop.DBus.Error.FileNotFound",
    "org.freedesktop.DBus.Error.UnknownObject",
})
DEFAULT_SYSTEM_BUS = "/run/dbus/system_bus_socket"


@dataclass(frozen=True)
class Method:
    name: str
    args: tuple[tuple[str, str], ...]   # (name, D-Bus type)
    returns: bool                        # a JSON string
    doc: str

    @property
    def signature(self) -> str:
        return "".join(t for _, t in self.args)

    @property
    def mutating(self) -> bool:
        """Whether the operation it carries changes anything (lib/ops.py; FollowLogs carries none)."""
        op = ops.BY_DBUS_METHOD.get(self.name)
        return op is not None and op.mutating


_NAME = (("name", "s"),)
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("Info", (), True, "exo_init itself: pid, hostname, manifest, boot_complete, ... (JSON)."),
    Method("ListCapsules", (), True,
           "Every capsule with state and live figures (JSON array, as `exoctl --json status`)."),
    Method("GetCapsule", _NAME, True, "One capsule's status (JSON object)."),
    Method("Logs", (("name", "s"), ("lines", "u")), True,
           'The last LINES lines of a capsule\'s log: JSON {"path": ..., "lines": [...]}.'),
    Method("FollowLogs", _NAME, False,
           "Emit LogLine for each new line of the capsule's log until the caller leaves the bus "
           "or calls UnfollowLogs."),
    Method("UnfollowLogs", _NAME, False, "Stop the LogLine signals FollowLogs asked for."),
    Method("Start", _NAME, True, "Start a capsule (root only); returns its status (JSON object)."),
    Method("Stop", _NAME, True, "Stop a capsule and what requires it (root only); returns its status."),
    Method("Restart", _NAME, True, "Restart a capsule (root only); returns its status."),
    Method("Freeze", _NAME, True, "Freeze a capsule's cgroup (root only); returns its status."),
    Method("Thaw", _NAME, True, "Thaw a frozen capsule (root only); returns its status."),
    Method("Reload", (), True,
           "Re-read the manifest and apply the difference (root only): JSON {added, removed, changed, ...}."),
    Method("PowerOff", (), True, "Stop every capsule and power off (root only)."),
    Method("Reboot", (), True, "Stop every capsule and reboot (root only)."),
)}
READ_ONLY_METHODS = tuple(n for n, m in METHODS.items() if not m.mutating)
MUTATING_METHODS = tuple(n for n, m in METHODS.items() if m.mutating)

SIGNALS: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {
    "CapsuleStateChanged": ((("name", "s"), ("old", "s"), ("new", "s"), ("reason", "s")),
                            "A capsule changed state (every transition exo_init makes)."),
    "LogLine": ((("name", "s"), ("line", "s")), "A new line of a followed capsule's log (see FollowLogs)."),
}

def control_request(method: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """The private control socket request for a D-Bus method call."""
    request: dict[str, Any] = {"op": ops.BY_DBUS_METHOD[method].name}
    if args:
        request["name"] = args[0]
    if method == "Logs":
        request["lines"] = int(args[1])
    return request


def supports(op: str) -> bool:
    """Whether a control socket operation has a Core1 method (others go to the socket only)."""
    return op in ops.OPERATIONS and bool(ops.OPERATIONS[op].dbus)


def dbus_call(request: dict[str, Any]) -> tuple[str, str, tuple[Any, ...]]:
    """(method, signature, args) for a control socket request (what exoctl sends on D-Bus)."""
    op = request["op"]
    name = request.get("name")
    if op == "status":
        return ("GetCapsule", "s", (name,)) if name is not None else ("ListCapsules", "", ())
    if op == "logs":
        return "Logs", "su", (name, int(request.get("lines", 50)))
    spec = METHODS[ops.OPERATIONS[op].dbus[0]]
    return spec.name, spec.signature, (name,) if spec.args else ()


def error_name(control_error: str) -> str:
    """The D-Bus error name for a control socket error name."""
    return ERROR_PREFIX + (control_error if control_error in ERROR_NAMES else "Failed")


def control_error_name(dbus_error: str) -> str:
    """The control socket's error name for a D-Bus error name (as exoctl reports it)."""
    if dbus_error.startswith(ERROR_PREFIX):
        return dbus_error[len(ERROR_PREFIX):]
    if dbus_error in ("org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.AuthFailed"):
        return "AccessDenied"
    if dbus_error in ("org.freedesktop.DBus.Error.InvalidArgs", "org.freedesktop.DBus.Error.UnknownMethod"):
        return "BadRequest"
    return "Failed"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _doc(text: str, indent: str) -> str:
    return f'{indent}<annotation name="org.freedesktop.DBus.DocString" value="{_esc(text)}"/>\n'


def introspection_xml() -> str:
    out = ['<node>\n', f'  <interface name="{INTERFACE}">\n',
           _doc("Exosphere's capsule supervisor (exo_init). Structured values are JSON strings, the same "
                "documents as exo_init's private control socket. Errors: org.exosphere.Error.NoSuchCapsule, "
                ".AccessDenied, .InvalidManifest, .BadRequest, .Failed.", "    ")]
    for m in METHODS.values():
        out.append(f'    <method name="{m.name}">\n')
        out.append(_doc(m.doc, "      "))
        out.extend(f'      <arg name="{n}" type="{t}" direction="in"/>\n' for n, t in m.args)
        if m.returns:
            out.append('      <arg name="result" type="s" direction="out"/>\n')
        out.append("    </method>\n")
    for name, (args, doc) in SIGNALS.items():
        out.append(f'    <signal name="{name}">\n')
        out.append(_doc(doc, "      "))
        out.extend(f'      <arg name="{n}" type="{t}"/>\n' for n, t in args)
        out.append("    </signal>\n")
    out.append("  </interface>\n</node>\n")
    return "".join(out)
