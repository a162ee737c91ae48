"""The D-Bus bridge capsule: serves org.exosphere.Core1 at /org/exosphere/Core1 on the system bus.

    python3 -m exo_init.system.dbus_bridge [--socket /run/exosphere/control.sock]

Every method is forwarded to exo_init over its private control socket (so PID 1 itself never
touches D-Bus); the API is described in exo_init/client/dbus_api.py and by introspection. Signals:
CapsuleStateChanged for every state transition (from the control socket's event stream, read by a
GLib io watch: no threads) and LogLine for the capsules a caller follows (FollowLogs).

Access control twice: the bus policy (org.exosphere.Core1.conf) lets only root call the mutating
methods, and each mutating call checks the caller's uid again (GetConnectionUnixUser) here, since
the bridge itself is root on the control socket. Errors are D-Bus errors named
org.exosphere.Error.{NoSuchCapsule,AccessDenied,InvalidManifest,BadRequest,Failed}.

If the bus goes away the bridge exits (GDBus's exit-on-close) and exo_init restarts it once the
bus capsule is back; exo_init does not depend on either.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gi.repository import Gio, GLib
from pydbus import SystemBus

from exo_init.client.control import Subscription, call
from exo_init.client.dbus_api import (
    BUS_NAME,
    ERROR_NAMES,
    METHODS,
    OBJECT_PATH,
    control_request,
    error_name,
    introspection_xml,
)
from exo_init.lib.errors import ApiError
from exo_init.lib.logfile import LogTail
from exo_init.lib.notify import sd_notify
from exo_init.lib.paths import DEFAULT_RUNTIME

log = logging.getLogger("exo.dbus_bridge")
CALL_TIMEOUT = 20.0            # a control socket call (PID 1 answers at once; bounded all the same)
RECONNECT_SECONDS = 1          # re-subscribing to exo_init's events after the stream ended
LOG_POLL_MS = 200              # followed log files are polled this often
MAX_FOLLOWS = 64               # (capsule, caller) pairs, in all
DBUS, DBUS_PATH = "org.freedesktop.DBus", "/org/freedesktop/DBus"


class BridgeError(Exception):
    """A method's error reply. pydbus 0.6 names the D-Bus error after the exception's class
    (`type(e).__name__`), so each subclass below is *named* org.exosphere.Error.NAME."""


ERRORS: dict[str, type[BridgeError]] = {n: type(error_name(n), (BridgeError,), {}) for n in ERROR_NAMES}


def api_error(name: str, message: str) -> BridgeError:
    return ERRORS.get(name, ERRORS["Failed"])(message)


class EventFeed:
    """exo_init's state events (control socket `subscribe`) -> a callback, on the GLib loop."""

    def __init__(self, path: Path, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.path = path
        self.on_event = on_event
        self.sub: Subscription | None = None

    def connect(self) -> bool:
        """Subscribe; on failure retry later (returns False so it also serves as a GLib timeout)."""
        try:
            sub = Subscription(self.path, timeout=5.0)
        except (OSError, ValueError, ApiError) as e:
            log.warning("cannot subscribe to exo_init's events at %s: %s; retrying", self.path, e)
            GLib.timeout_add_seconds(RECONNECT_SECONDS, self.connect)
            return False
        sub.sock.setblocking(False)
        self.sub = sub
        GLib.io_add_watch(sub.fileno(), GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR,
                          self._readable)
        self._dispatch()
        return False

    def _readable(self, _fd: int, _condition: int) -> bool:
        self._dispatch()
        if self.sub is None:
            GLib.timeout_add_seconds(RECONNECT_SECONDS, self.connect)
            return False
        return True

    def _dispatch(self) -> None:
        assert self.sub is not None
        try:
            events = self.sub.receive()
        except (OSError, ValueError) as e:  # (ConnectionError is an OSError: the stream ended)
            log.warning("exo_init's event stream ended (%s); resubscribing", e)
            self.sub.close()
            self.sub = None
            return
        for event in events:
            self.on_event(event)


class Signal:
    """A D-Bus signal of a published object, as pydbus's ObjectWrapper uses one: it `connect`s its
    emitter (and calls `__exit__` on the result when unpublishing); calling the signal emits it.
    (pydbus.generic.signal is a class-level descriptor; this is a plain per-object attribute.)"""

    def __init__(self) -> None:
        self.callbacks: list[Callable[..., None]] = []

    def connect(self, callback: Callable[..., None]) -> Any:
        self.callbacks.append(callback)
        callbacks = self.callbacks

        class Subscription:
            def __exit__(self, *_exc: object) -> None:
                if callback in callbacks:
                    callbacks.remove(callback)

        return Subscription()

    def __call__(self, *args: Any) -> None:
        for callback in list(self.callbacks):
            try:
                callback(*args)
            except GLib.Error as e:  # the bus went away: the bridge is on its way out anyway
                log.warning("signal not sent: %s", e.message)


class Core1:
    """The org.exosphere.Core1 object (pydbus publishes the methods below by name)."""

    dbus = introspection_xml()

    def __init__(self, bus: Any, control: Path) -> None:
        self.CapsuleStateChanged = Signal()
        self.LogLine = Signal()
        self.bus = bus
        self.control = control
        self.follows: dict[str, set[str]] = {}     # capsule -> unique bus names of its followers
        self.tails: dict[str, LogTail] = {}
        self.poll_source: int | None = None

    # --- plumbing -----------------------------------------------------------------------------------

    def _caller_uid(self, sender: str) -> int:
        try:
            reply = self.bus.con.call_sync(
                DBUS, DBUS_PATH, DBUS, "GetConnectionUnixUser", GLib.Variant("(s)", (sender,)),
                GLib.VariantType("(u)"), Gio.DBusCallFlags.NONE, 5000, None)
        except GLib.Error as e:
            raise api_error("AccessDenied", f"cannot identify the caller {sender}: {e.message}") from None
        return int(reply.unpack()[0])

    def _run(self, method: str, args: tuple[Any, ...], ctx: Any) -> Any:
        request = control_request(method, args)
        try:
            if METHODS[method].mutating:
                uid = self._caller_uid(ctx.sender)
                if uid != 0:
                    raise api_error("AccessDenied", f"{request['op']} needs root (caller uid {uid})")
            return call(self.control, request, timeout=CALL_TIMEOUT)
        except BridgeError:
            raise
        except ApiError as e:
            raise api_error(e.name, e.message) from None
        except OSError as e:
            raise api_error("Failed", f"cannot reach exo_init at {self.control}: {e.strerror or e}") from None
        except Exception as e:
            log.exception("%s failed", method)
            raise api_error("Failed", f"{method}: {type(e).__name__}: {e}") from None

    def _json(self, method: str, args: tuple[Any, ...], ctx: Any) -> str:
        return json.dumps(self._run(method, args, ctx), sort_keys=True)

    def publish_event(self, event: dict[str, Any]) -> None:
        if "new" not in event:
            return  # a health verdict (exo_init/pid1/health.py), not a state change
        self.CapsuleStateChanged(str(event.get("capsule", "")), str(event.get("old", "")),
                                 str(event.get("new", "")), str(event.get("reason", "")))

    # --- read-only methods ----------------------------------------------------------------------------

    def Info(self, dbus_context: Any = None) -> str:
        return self._json("Info", (), dbus_context)

    def ListCapsules(self, dbus_context: Any = None) -> str:
        return self._json("ListCapsules", (), dbus_context)

    def GetCapsule(self, name: str, dbus_context: Any = None) -> str:
        return self._json("GetCapsule", (name,), dbus_context)

    def Logs(self, name: str, lines: int, dbus_context: Any = None) -> str:
        return self._json("Logs", (name, lines), dbus_context)

    def FollowLogs(self, name: str, dbus_context: Any = None) -> None:
        path = Path(self._run("Logs", (name, 0), dbus_context)["path"])
        if sum(len(s) for s in self.follows.values()) >= MAX_FOLLOWS:
            raise api_error("Failed", f"too many log followers (at most {MAX_FOLLOWS})")
        self.follows.setdefault(name, set()).add(dbus_context.sender)
        if name not in self.tails:
            self.tails[name] = LogTail(path)
        if self.poll_source is None:
            self.poll_source = GLib.timeout_add(LOG_POLL_MS, self._poll_logs)

    def UnfollowLogs(self, name: str, dbus_context: Any = None) -> None:
        self._drop_follower(name, dbus_context.sender)

    def _drop_follower(self, name: str, sender: str) -> None:
        followers = self.follows.get(name)
        if followers is None:
            return
        followers.discard(sender)
        if not followers:
            del self.follows[name]
            tail = self.tails.pop(name, None)
            if tail is not None:
                tail.close()

    def on_name_owner_changed(self, _con: Any, _sender: str, _path: str, _iface: str, _signal: str,
                              params: Any) -> None:
        name, _old, new = params.unpack()
        if new == "":
            for capsule in list(self.follows):
                self._drop_follower(capsule, name)

    def _poll_logs(self) -> bool:
        for name, tail in list(self.tails.items()):
            for line in tail.read_lines():
                self.LogLine(name, line)
        if not self.tails:
            self.poll_source = None
            return False
        return True

    # --- mutating methods (root only) --------------------------------------------------------------

    def Start(self, name: str, dbus_context: Any = None) -> str:
        return self._json("Start", (name,), dbus_context)

    def Stop(self, name: str, dbus_context: Any = None) -> str:
        return self._json("Stop", (name,), dbus_context)

    def Restart(self, name: str, dbus_context: Any = None) -> str:
        return self._json("Restart", (name,), dbus_context)

    def Freeze(self, name: str, dbus_context: Any = None) -> str:
        return self._json("Freeze", (name,), dbus_context)

    def Thaw(self, name: str, dbus_context: Any = None) -> str:
        return self._json("Thaw", (name,), dbus_context)

    def Reload(self, dbus_context: Any = None) -> str:
        return self._json("Reload", (), dbus_context)

    def PowerOff(self, dbus_context: Any = None) -> str:
        return self._json("PowerOff", (), dbus_context)

    def Reboot(self, dbus_context: Any = None) -> str:
        return self._json("Reboot", (), dbus_context)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="exo_init.system.dbus_bridge", description=f"{BUS_NAME} on the system bus")
    p.add_argument("--socket", type=Path, default=DEFAULT_RUNTIME / "control.sock",
                   help="exo_init's control socket")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(message)s")
    # pydbus logs a traceback for every error reply; the bridge logs the unexpected ones itself.
    logging.getLogger("pydbus").setLevel(logging.CRITICAL)

    try:
        bus = SystemBus()
    except GLib.Error as e:
        sys.exit(f"dbus_bridge: cannot connect to the system bus: {e.message}")
    core = Core1(bus, args.socket)
    registration = bus.register_object(OBJECT_PATH, core, None)
    bus.con.signal_subscribe(DBUS, DBUS, "NameOwnerChanged", DBUS_PATH, None, Gio.DBusSignalFlags.NONE,
                             core.on_name_owner_changed)
    try:
        owner = bus.request_name(BUS_NAME, allow_replacement=False)
    except (GLib.Error, RuntimeError) as e:
        sys.exit(f"dbus_bridge: cannot own {BUS_NAME}: {getattr(e, 'message', e)}")
    EventFeed(args.socket, core.publish_event).connect()
    print(f"serving {BUS_NAME} at {OBJECT_PATH} (exo_init at {args.socket})", flush=True)
    sd_notify(f"READY=1\nSTATUS=serving {BUS_NAME}")
    loop = GLib.MainLoop()
    # SIGTERM is handled between dispatches, so a call being answered gets its reply first (e.g. a
    # Stop of the bus, which stops this bridge before exo_init has even answered it).
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, lambda: loop.quit() or False)
    loop.run()
    if bus.con.is_closed():  # GDBus raises SIGTERM when the bus goes away (exit-on-close)
        sys.exit("dbus_bridge: the system bus went away")
    try:
        bus.con.flush_sync(None)
        owner.unown()
        registration.unregister()
    except GLib.Error as e:
        sys.exit(f"dbus_bridge: leaving the bus: {e.message}")
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
