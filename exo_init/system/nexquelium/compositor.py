"""The compositor: Wayland globals, surfaces and xdg toplevels, composed onto one output.

Views are a stack: every toplevel is configured to the output minus the view bar at the bottom
(maximized) and only the active one is shown, clipped to that area; the bar names every view
(its client's capsule when the compositor can tell, else its title) and marks the active one. A
new view becomes active; Alt+Tab cycles, a click on the bar picks one. The keyboard goes to the
active view's client, the pointer to the view under it (`seat.Seat`). A client that does not
answer xdg_wm_base.ping within PING_TIMEOUT is disconnected: it loses its view, nothing else.

A committed wl_shm buffer is copied at commit and released at once; frame callbacks are answered
after the frame that showed the commit was presented. The loop is PID-1 style: a `selectors`
loop over the listening socket, libwayland's event-loop fd, the input devices and the inotify fd
of /dev/input, with `dispatch(0)` + `flush_clients()`, and every wait bounded.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pywayland import lib
from pywayland.protocol.wayland import (
    WlBuffer,
    WlCallback,
    WlCompositor,
    WlOutput,
    WlRegion,
    WlSeat,
    WlShm,
    WlShmPool,
    WlSurface,
)
from pywayland.protocol.xdg_shell import XdgPositioner, XdgSurface, XdgToplevel, XdgWmBase
from pywayland.protocol_core.resource import Resource
from pywayland.server.display import Display

from exo_init.system.nexquelium import devices, font, shm, wlfix
from exo_init.system.nexquelium.backends import Backend, Canvas
from exo_init.system.nexquelium.seat import CAP_KEYBOARD, CAP_POINTER, SEAT_VERSION, Seat
from exo_init.system.nexquelium.xkb import Keymap

XDG_STATE_MAXIMIZED = 1
XDG_STATE_FULLSCREEN = 2
XDG_STATE_ACTIVATED = 4
MAX_FPS = 30.0
BAR_H = 20                      # the view bar at the bottom of the output
TAB_W = 200                     # the widest a view's name gets in the bar
BAR = (0x16, 0x1A, 0x20)        # R, G, B
TAB = (0x30, 0x38, 0x48)
TAB_ACTIVE = (0x2E, 0x7D, 0xD1)
BAR_TEXT = (0xE8, 0xEC, 0xF2)
CURSOR = (0xFF, 0xFF, 0xFF)
CURSOR_EDGE = (0x00, 0x00, 0x00)
PING_INTERVAL = 5.0             # seconds between pings of a client with a view
# No pong within PING_TIMEOUT: the client is disconnected. (A client busy for seconds, such as the
# dashboard waiting on PID 1 in a loaded TCG guest, is not stalled: 10 s dropped it there.)
PING_TIMEOUT = 30.0
LATENCY_SAMPLES = 200
NAME_RETRY = 1.0

Res = Resource[Any]


@dataclass(eq=False)
class Surface:
    resource: Res
    pending_buffer: Res | None = None
    attached: bool = False
    pending_frames: list[Res] = field(default_factory=list)
    frames: list[Res] = field(default_factory=list)      # answered after the next present
    image: tuple[bytes, int, int, int] | None = None      # data, width, height, stride
    xdg: Res | None = None
    toplevel: Res | None = None
    title: str = ""
    configured_serial: int | None = None
    configured_activated: bool = False
    acked: bool = False
    client: int = 0                                        # the wl_client's address
    name: str = ""                                         # its capsule's name, when known
    name_tried: float = 0.0                                # when it was last looked up
    mapped_at: float = 0.0                                 # first shown (0: never)

    @property
    def label(self) -> str:
        return self.name or self.title or "?"


def latency_summary(latencies: Mapping[str, Sequence[float]]) -> str:
    """Input-to-frame figures per view, for STATUS: "dashboard 45/80 ms x12, viewer 9/14 ms x12"
    (the median and the max in ms, and how many answered presses they are of)."""
    parts = []
    for view, values in sorted(latencies.items()):
        if values:
            ms = sorted(v * 1000 for v in values)
            parts.append(f"{view} {ms[len(ms) // 2]:.0f}/{ms[-1]:.0f} ms x{len(ms)}")
    return ", ".join(parts)


class Compositor:
    def __init__(self, backend: Backend, on_present: Callable[[Compositor, bool], None] | None = None, *,
                 keymap: Keymap | None = None, watcher: devices.Watcher | None = None,
                 client_name: Callable[[int, int], str | None] | None = None,
                 ping: tuple[float, float] = (PING_INTERVAL, PING_TIMEOUT)) -> None:
        """`watcher`: the input devices (None: only those given to `add_device`); `client_name`:
        (pid, uid) of a client -> its capsule's name; `ping`: (interval, timeout) in seconds."""
        self.backend = backend
        self.canvas = Canvas(backend.width, backend.height)
        self.display = Display()
        self.loop = self.display.get_event_loop()
        self.surfaces: dict[int, Surface] = {}         # by wl_surface address, in creation order
        self.pools: dict[int, shm.Pool] = {}
        self.buffers: dict[int, shm.Buffer] = {}
        self.dirty = True
        self.last_present = 0.0
        self.frames_presented = 0
        self.client_frames = 0
        self.on_present = on_present
        self.running = True
        self.started = time.monotonic()
        self.keymap = keymap if keymap is not None else Keymap()
        self.seat = Seat(self, self.keymap)
        self.seat.x, self.seat.y = backend.width / 2, backend.height / 2
        self.active: Surface | None = None
        self.cursor_shown = False
        self.watcher = watcher
        self.inputs: dict[int, devices.Device] = {}
        self.sel: selectors.BaseSelector | None = None
        self.client_name = client_name
        self.wm_bases: dict[int, Res] = {}                 # by client address
        self.pings: dict[int, tuple[int, float]] = {}      # client -> (serial, sent at)
        self.last_ping_round = time.monotonic()
        self.ping_interval, self.ping_timeout = ping
        self.disconnected: list[str] = []                  # views dropped for not answering pings
        # Input-to-frame latency: from a key or button press reaching the active view's client to
        # the present of the first frame with a buffer it committed after it (seconds), per view.
        self.input_at: float | None = None
        self.answered = False
        self.latencies: dict[str, deque[float]] = {}
        self.inputs_answered = 0  # samples taken (the deques keep the last LATENCY_SAMPLES)
        self.seat.on_input = self._input_delivered
        wlfix.on_destroyed.append(self._forget)
        self.globals = [self._global(WlCompositor, 4, self._bind_compositor),
                        self._global(WlShm, 1, self._bind_shm),
                        self._global(XdgWmBase, 2, self._bind_wm_base),
                        self._global(WlOutput, 2, self._bind_output),
                        self._global(WlSeat, SEAT_VERSION, self.seat.bind)]
        self.sock: socket.socket | None = None
        if watcher is not None:
            self._hotplug()

    # --- plumbing ---------------------------------------------------------------------------------

    def _global(self, iface: Any, version: int, bind: Callable[[Res], None]) -> Any:
        g = iface.global_class(self.display, version)

        def bound(resource: Res) -> None:
            self._defaults(wlfix.adopt(resource))
            bind(resource)

        g.bind_func = bound
        return g

    def new_resource(self, iface: Any, parent: Res, new_id: int) -> Res:
        return self._defaults(wlfix.create(iface.resource_class, wlfix.client_of(parent), parent.version, new_id))

    def _plain(self, iface: Any) -> Callable[[Res, int], None]:
        """A request that creates an object the compositor keeps no state for (regions, positioners)."""
        def create(parent: Res, new_id: int) -> None:
            self.new_resource(iface, parent, new_id)
        return create

    @staticmethod
    def _defaults(res: Res) -> Res:
        """Destructor requests destroy the resource (libwayland leaves that to the server)."""
        for name in ("destroy", "release"):
            if name in res.dispatcher._names and res.dispatcher[name] is None:
                res.dispatcher[name] = wlfix.destroy
        return res

    def listen(self, path: Path, mode: int = 0o666) -> None:
        """Listen on `path` ourselves (any directory, our permissions); each accepted connection
        becomes a libwayland client (wl_client_create takes the fd)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        sock.bind(str(path))
        os.chmod(path, mode)
        sock.listen(16)
        self.sock = sock

    def _accept(self) -> None:
        assert self.sock is not None
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            fd = conn.detach()
            if self.display._ptr is None or lib.wl_client_create(self.display._ptr, fd) == wlfix.ffi.NULL:
                os.close(fd)

    def run(self, until: Callable[[], bool] | None = None) -> None:
        sel = self.sel = selectors.DefaultSelector()
        if self.sock is not None:
            sel.register(self.sock, selectors.EVENT_READ, "accept")
        sel.register(wlfix.event_loop_fd(self.loop), selectors.EVENT_READ, "wayland")
        if self.watcher is not None and self.watcher.watching:
            sel.register(self.watcher.fileno(), selectors.EVENT_READ, "hotplug")
        for dev in self.inputs.values():
            sel.register(dev.fd, selectors.EVENT_READ, dev)
        try:
            while self.running and not (until and until()):
                self.pump()
                timeout = min(1.0, self.ping_interval)
                if self.dirty:
                    timeout = max(0.0, self.last_present + 1.0 / MAX_FPS - time.monotonic())
                for key, _ in sel.select(timeout):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "hotplug":
                        self._hotplug()
                    elif isinstance(key.data, devices.Device):
                        self._read_device(key.data)
        finally:
            self.sel = None
            sel.close()

    # --- input devices ----------------------------------------------------------------------------

    def add_device(self, dev: devices.Device) -> None:
        self.inputs[dev.fd] = dev
        if self.sel is not None:
            self.sel.register(dev.fd, selectors.EVENT_READ, dev)
        log(f"input: {dev.path} ({dev.name or '?'}): " +
            " + ".join(k for k, on in (("keyboard", dev.caps.keyboard), ("pointer", dev.caps.pointer)) if on))
        self._update_capabilities()

    def remove_device(self, dev: devices.Device) -> None:
        if self.inputs.pop(dev.fd, None) is None:
            return
        if self.sel is not None:
            self.sel.unregister(dev.fd)
        if self.watcher is not None:
            self.watcher.drop(dev)
        log(f"input: {dev.path} ({dev.name or '?'}) removed")
        self._update_capabilities()

    def _update_capabilities(self) -> None:
        caps = (CAP_KEYBOARD if any(d.caps.keyboard for d in self.inputs.values()) else 0) | \
            (CAP_POINTER if any(d.caps.pointer for d in self.inputs.values()) else 0)
        self.seat.set_capabilities(caps)
        self.cursor_shown = bool(caps & CAP_POINTER)
        self.dirty = True

    def _hotplug(self) -> None:
        assert self.watcher is not None
        self.watcher.drain()
        added, removed = self.watcher.scan()
        for dev in removed:
            self.remove_device(dev)
        for dev in added:
            self.add_device(dev)

    def _read_device(self, dev: devices.Device) -> None:
        try:
            events = dev.read()
        except OSError:
            self.remove_device(dev)  # unplugged (ENODEV)
            return
        for event in events:
            self.seat.handle(event)

    def pump(self) -> None:
        """One round: dispatch what the clients sent, ping, repaint if due, flush the answers."""
        self.loop.dispatch(0)
        if time.monotonic() - self.last_ping_round >= self.ping_interval:
            self._ping_round()
        if self.dirty and time.monotonic() - self.last_present >= 1.0 / MAX_FPS:
            self.repaint()
        self.display.flush_clients()

    def close(self) -> None:
        wlfix.on_destroyed.remove(self._forget)
        self.display.destroy()
        if self.sock is not None:
            self.sock.close()
        for dev in list(self.inputs.values()):
            if self.watcher is None:
                dev.close()
        if self.watcher is not None:
            self.watcher.close()
        self.keymap.close()
        self.backend.close()

    def _ping_round(self) -> None:
        """xdg_wm_base.ping every client with a view; one that left the last ping unanswered for
        PING_TIMEOUT is disconnected (libwayland destroys its resources: its view goes)."""
        now = self.last_ping_round = time.monotonic()
        clients = {s.client: s for s in self.views()}
        for client, surface in clients.items():
            wm = self.wm_bases.get(client)
            if wm is None or wm._ptr is None:
                continue
            pending = self.pings.get(client)
            if pending is None:
                serial = self.display.next_serial()
                self.pings[client] = (serial, now)
                wlfix.post_event(wm, 0, serial)
            elif now - pending[1] >= self.ping_timeout:
                log(f"{surface.label}: no answer to a ping for {now - pending[1]:.0f} s: disconnected")
                self.disconnected.append(surface.label)
                self.pings.pop(client)
                lib.wl_client_destroy(wlfix.client_of(wm))

    # --- composition ------------------------------------------------------------------------------

    def views(self) -> list[Surface]:
        """The mapped toplevels (a buffer committed), in the order they appeared."""
        return sorted((s for s in self.surfaces.values() if s.toplevel is not None and s.image is not None),
                      key=lambda s: s.mapped_at)

    @property
    def area(self) -> tuple[int, int]:
        """The size every view gets (the output above the bar)."""
        return self.canvas.width, max(1, self.canvas.height - BAR_H)

    def view_at(self, x: float, y: float) -> Surface | None:
        a = self.active
        return a if a is not None and a.image is not None and y < self.area[1] else None

    @staticmethod
    def surface_local(surface: Surface, x: float, y: float) -> tuple[float, float]:
        return x, y  # the view area starts at the output's origin

    def activate(self, surface: Surface | None) -> None:
        """Make `surface` the active view: shown, keyboard focus, configured activated."""
        old, self.active = self.active, surface
        self.input_at, self.answered = None, False  # an input before the switch: no one's answer to time
        for s in (old, surface):
            if s is not None and s.toplevel is not None and s.toplevel._ptr is not None and s.xdg is not None:
                self._configure(s)
        self.seat.focus_keyboard(surface)
        self.seat.update_pointer()
        self.dirty = True

    def cycle_focus(self) -> None:
        views = self.views()
        if views:
            i = views.index(self.active) if self.active in views else -1
            self.activate(views[(i + 1) % len(views)])

    def click(self, x: float, y: float) -> bool:
        """A button press at (x, y): True when it was the compositor's (a view's name in the bar)."""
        if y < self.area[1]:
            return False
        views = self.views()
        i = int(x) // self._tab_width(len(views)) if views else -1
        if 0 <= i < len(views):
            self.activate(views[i])
        return True

    def _input_delivered(self) -> None:
        if self.input_at is None:
            self.input_at = time.monotonic()

    def cursor_moved(self) -> None:
        self.dirty = True

    def _tab_width(self, n: int) -> int:
        return max(1, min(TAB_W, self.canvas.width // max(1, n)))

    def _draw_bar(self, views: list[Surface]) -> None:
        c, top = self.canvas, self.area[1]
        c.fill(0, top, c.width, BAR_H, BAR)
        tw = self._tab_width(len(views))
        for i, v in enumerate(views):
            c.fill(i * tw + 1, top + 2, tw - 2, BAR_H - 3, TAB_ACTIVE if v is self.active else TAB)
            font.draw_text(c, i * tw + 6, top + (BAR_H - font.HEIGHT) // 2, v.label, BAR_TEXT, tw - 10)

    def _draw_cursor(self) -> None:
        x, y = int(self.seat.x), int(self.seat.y)
        for r in range(12):  # an arrow: a right triangle with a dark edge
            self.canvas.fill(x, y + r, r // 2 + 1, 1, CURSOR_EDGE)
            if 0 < r < 11:
                self.canvas.fill(x + 1, y + r, max(0, r // 2 - 1), 1, CURSOR)

    def _name_views(self, views: list[Surface]) -> None:
        """Look up the capsule of each view not named yet (again each NAME_RETRY seconds: PID 1
        publishes a capsule's uid once it runs, which may be after its client connected)."""
        now = time.monotonic()
        for v in views:
            if not v.name and self.client_name is not None and now - v.name_tried >= NAME_RETRY:
                v.name_tried = now
                v.name = self._name_of(v.resource) or ""
                if v.name:
                    log(f"view named: {v.name} ({v.title!r})")

    def repaint(self) -> None:
        self.canvas.clear()
        views = self.views()
        self._name_views(views)
        active = self.active
        shown = active is not None and active.image is not None and active in views
        if shown and active is not None and active.image is not None:
            data, w, h, stride = active.image
            self.canvas.blit(data, w, h, stride, clip=self.area)
        self._draw_bar(views)
        if self.cursor_shown:
            self._draw_cursor()
        self.backend.present(self.canvas)
        if self.answered and self.input_at is not None:
            view = active.label if active is not None else "?"
            self.latencies.setdefault(view, deque(maxlen=LATENCY_SAMPLES)).append(time.monotonic() - self.input_at)
            self.inputs_answered += 1
            self.input_at, self.answered = None, False
        self.dirty = False
        self.last_present = time.monotonic()
        self.frames_presented += 1
        if shown:
            self.client_frames += 1
        now_ms = int(time.monotonic() * 1000) & 0xFFFFFFFF
        for s in list(self.surfaces.values()):
            frames, s.frames = s.frames, []
            for cb in frames:
                wlfix.post_event(cb, 0, now_ms)   # wl_callback.done
                wlfix.destroy(cb)
        if self.on_present is not None:
            self.on_present(self, shown)

    def _forget(self, resource: Res) -> None:
        key = wlfix.address(resource._ptr)
        self.seat.forget(resource)
        for client, wm in list(self.wm_bases.items()):
            if wm is resource:
                del self.wm_bases[client]
                self.pings.pop(client, None)
        lost = self.active is not None and resource in (self.active.resource, self.active.toplevel, self.active.xdg)
        if key in self.surfaces:
            del self.surfaces[key]
            self.dirty = True
        for s in self.surfaces.values():
            if s.toplevel is resource or s.xdg is resource:
                s.toplevel = None if s.toplevel is resource else s.toplevel
                s.xdg = None if s.xdg is resource else s.xdg
                self.dirty = True
            s.frames = [f for f in s.frames if f is not resource]
            s.pending_frames = [f for f in s.pending_frames if f is not resource]
        pool = self.pools.pop(key, None)
        if pool is not None:
            pool.destroyed = True
            pool.release()
        buf = self.buffers.pop(key, None)
        if buf is not None:
            buf.pool.buffers -= 1
            buf.pool.release()
        if lost:
            self.active = None
            views = [v for v in self.views() if v.toplevel is not None]
            self.activate(views[-1] if views else None)

    # --- wl_compositor, wl_surface, wl_region -----------------------------------------------------

    def _bind_compositor(self, res: Res) -> None:
        res.dispatcher["create_surface"] = self._create_surface
        res.dispatcher["create_region"] = self._plain(WlRegion)

    def _create_surface(self, parent: Res, new_id: int) -> None:
        res = self.new_resource(WlSurface, parent, new_id)
        surface = Surface(res, client=wlfix.address(wlfix.client_of(res)))
        self.surfaces[wlfix.address(res._ptr)] = surface

        def attach(r: Res, buffer: Res | None, x: int, y: int) -> None:
            surface.pending_buffer, surface.attached = buffer, True

        res.dispatcher["attach"] = attach
        res.dispatcher["frame"] = lambda r, new_id: surface.pending_frames.append(
            self.new_resource(WlCallback, r, new_id))
        res.dispatcher["commit"] = lambda r: self._commit(surface)

    def _commit(self, s: Surface) -> None:
        if s.attached:
            s.attached = False
            buf_res, s.pending_buffer = s.pending_buffer, None
            if buf_res is None:
                s.image = None
            else:
                buf = self.buffers.get(wlfix.address(buf_res._ptr)) if buf_res._ptr is not None else None
                if buf is None:
                    s.resource._post_error(2, "not a wl_shm buffer")  # wl_display.error: invalid object
                    return
                s.image = (buf.rows(), buf.width, buf.height, buf.stride)
                wlfix.post_event(buf_res, 0)  # wl_buffer.release: the contents are copied
                if s is self.active and self.input_at is not None:
                    self.answered = True
            self.dirty = True
            if s.image is not None and s.toplevel is not None and not s.mapped_at:
                s.mapped_at = time.monotonic()
                log(f"view shown: {s.title!r}")
                self.activate(s)  # a new view comes to the front
            elif s.image is None and s is self.active:
                others = [v for v in self.views() if v is not s]
                self.activate(others[-1] if others else None)
        s.frames += s.pending_frames
        s.pending_frames = []
        if s.toplevel is not None and s.configured_serial is None:
            self._configure(s)
        if s.frames:
            self.dirty = True  # a frame callback is answered by the next present

    # --- wl_shm -----------------------------------------------------------------------------------

    def _bind_shm(self, res: Res) -> None:
        for fmt in shm.FORMATS:
            wlfix.post_event(res, 0, fmt)  # wl_shm.format
        res.dispatcher["create_pool"] = self._create_pool

    def _create_pool(self, parent: Res, new_id: int, fd: int, size: int) -> None:
        res = self.new_resource(WlShmPool, parent, new_id)
        try:
            pool = shm.Pool(fd, size)
        except shm.ShmError as e:
            parent._post_error(2, str(e))  # wl_shm.error.invalid_fd
            return
        self.pools[wlfix.address(res._ptr)] = pool

        def create_buffer(r: Res, buf_id: int, offset: int, width: int, height: int, stride: int, fmt: int) -> None:  # noqa: PLR0917
            buf_res = self.new_resource(WlBuffer, r, buf_id)
            buf = shm.Buffer(pool, offset, width, height, stride, fmt)
            try:
                buf.check()
            except shm.ShmError as e:
                r._post_error(1 if "format" in str(e) else 2, str(e))  # invalid_format / invalid_stride
                return
            pool.buffers += 1
            self.buffers[wlfix.address(buf_res._ptr)] = buf

        def resize(r: Res, size: int) -> None:
            try:
                pool.resize(size)
            except shm.ShmError as e:
                r._post_error(2, str(e))

        res.dispatcher["create_buffer"] = create_buffer
        res.dispatcher["resize"] = resize

    # --- xdg_wm_base, xdg_surface, xdg_toplevel ---------------------------------------------------

    def _bind_wm_base(self, res: Res) -> None:
        client = wlfix.address(wlfix.client_of(res))
        self.wm_bases[client] = res

        def pong(_r: Res, serial: int) -> None:
            if self.pings.get(client, (None, 0.0))[0] == serial:
                del self.pings[client]

        res.dispatcher["pong"] = pong
        res.dispatcher["create_positioner"] = self._plain(XdgPositioner)
        res.dispatcher["get_xdg_surface"] = self._get_xdg_surface

    def _get_xdg_surface(self, parent: Res, new_id: int, surface_res: Res | None) -> None:
        res = self.new_resource(XdgSurface, parent, new_id)
        s = self.surfaces.get(wlfix.address(surface_res._ptr)) if surface_res is not None else None
        if s is None:
            parent._post_error(2, "get_xdg_surface: not a surface")  # xdg_wm_base.error.role
            return
        s.xdg = res

        def get_toplevel(r: Res, top_id: int) -> None:
            top = self.new_resource(XdgToplevel, r, top_id)
            top.dispatcher["set_title"] = lambda _r, title: setattr(s, "title", title)
            s.toplevel = top

        def ack_configure(r: Res, serial: int) -> None:
            s.acked = True

        res.dispatcher["get_toplevel"] = get_toplevel
        res.dispatcher["ack_configure"] = ack_configure

    def _configure(self, s: Surface) -> None:
        assert s.toplevel is not None and s.xdg is not None
        s.configured_activated = s is self.active
        states = struct.pack("=II", XDG_STATE_MAXIMIZED, XDG_STATE_ACTIVATED) if s.configured_activated \
            else struct.pack("=I", XDG_STATE_MAXIMIZED)
        wlfix.post_event(s.toplevel, 0, *self.area, states)  # xdg_toplevel.configure
        s.configured_serial = self.display.next_serial()
        wlfix.post_event(s.xdg, 0, s.configured_serial)  # xdg_surface.configure

    # --- wl_output, wl_seat -----------------------------------------------------------------------

    def _bind_output(self, res: Res) -> None:
        w, h = self.canvas.width, self.canvas.height
        # geometry: x, y, physical size (mm, at ~96 dpi), subpixel unknown, make, model, transform normal
        wlfix.post_event(res, 0, 0, 0, w * 254 // 960, h * 254 // 960, 0, "Exosphere", self.backend.name, 0)
        wlfix.post_event(res, 1, 0x3, w, h, 60000)  # mode: current | preferred, 60 Hz
        if res.version >= 2:
            wlfix.post_event(res, 3, 1)  # scale
            wlfix.post_event(res, 2)     # done

    def _name_of(self, res: Res) -> str | None:
        """The capsule a client belongs to, from its socket credentials (`client_name`)."""
        if self.client_name is None:
            return None
        pid, uid, gid = wlfix.ffi.new("pid_t *"), wlfix.ffi.new("uid_t *"), wlfix.ffi.new("gid_t *")
        lib.wl_client_get_credentials(wlfix.client_of(res), pid, uid, gid)
        try:
            return self.client_name(int(pid[0]), int(uid[0]))
        except OSError:
            return None


def log(message: str) -> None:
    print(f"nexquelium: {message}", file=sys.stderr, flush=True)
