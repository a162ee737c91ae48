"""The compositor: Wayland globals, surfaces and xdg toplevels, composed onto one output.

Every toplevel is configured to the output's size (fullscreen, activated) and drawn in creation
order (the newest on top). A committed wl_shm buffer is copied at commit and released at once;
frame callbacks are answered after the frame that showed the commit was presented. The loop is
PID-1 style: a `selectors` loop over the listening socket and libwayland's event-loop fd, with
`dispatch(0)` + `flush_clients()`, and every wait bounded.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys
import time
from collections.abc import Callable
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

from exo_init.system.nexquelium import shm, wlfix
from exo_init.system.nexquelium.backends import Backend, Canvas

XDG_STATE_FULLSCREEN = 2
XDG_STATE_ACTIVATED = 4
MAX_FPS = 30.0

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
    acked: bool = False


class Compositor:
    def __init__(self, backend: Backend, on_present: Callable[[Compositor, bool], None] | None = None) -> None:
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
        wlfix.on_destroyed.append(self._forget)
        self.globals = [self._global(WlCompositor, 4, self._bind_compositor),
                        self._global(WlShm, 1, self._bind_shm),
                        self._global(XdgWmBase, 2, self._bind_wm_base),
                        self._global(WlOutput, 2, self._bind_output),
                        self._global(WlSeat, 1, self._bind_seat)]
        self.sock: socket.socket | None = None

    # --- plumbing ---------------------------------------------------------------------------------

    def _global(self, iface: Any, version: int, bind: Callable[[Res], None]) -> Any:
        g = iface.global_class(self.display, version)

        def bound(resource: Res) -> None:
            self._defaults(wlfix.adopt(resource))
            bind(resource)

        g.bind_func = bound
        return g

    def _new(self, iface: Any, parent: Res, new_id: int) -> Res:
        return self._defaults(wlfix.create(iface.resource_class, wlfix.client_of(parent), parent.version, new_id))

    def _plain(self, iface: Any) -> Callable[[Res, int], None]:
        """A request that creates an object the compositor keeps no state for (regions, positioners)."""
        def create(parent: Res, new_id: int) -> None:
            self._new(iface, parent, new_id)
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
        sel = selectors.DefaultSelector()
        if self.sock is not None:
            sel.register(self.sock, selectors.EVENT_READ, "accept")
        sel.register(wlfix.event_loop_fd(self.loop), selectors.EVENT_READ, "wayland")
        try:
            while self.running and not (until and until()):
                self.pump()
                timeout = 1.0
                if self.dirty:
                    timeout = max(0.0, self.last_present + 1.0 / MAX_FPS - time.monotonic())
                for key, _ in sel.select(timeout):
                    if key.data == "accept":
                        self._accept()
        finally:
            sel.close()

    def pump(self) -> None:
        """One round: dispatch what the clients sent, repaint if due, flush the answers."""
        self.loop.dispatch(0)
        if self.dirty and time.monotonic() - self.last_present >= 1.0 / MAX_FPS:
            self.repaint()
        self.display.flush_clients()

    def close(self) -> None:
        wlfix.on_destroyed.remove(self._forget)
        self.display.destroy()
        if self.sock is not None:
            self.sock.close()
        self.backend.close()

    # --- composition ------------------------------------------------------------------------------

    def repaint(self) -> None:
        self.canvas.clear()
        shown = False
        for s in self.surfaces.values():
            if s.image is not None and s.toplevel is not None:
                data, w, h, stride = s.image
                self.canvas.blit(data, w, h, stride)
                shown = True
        self.backend.present(self.canvas)
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

    # --- wl_compositor, wl_surface, wl_region -----------------------------------------------------

    def _bind_compositor(self, res: Res) -> None:
        res.dispatcher["create_surface"] = self._create_surface
        res.dispatcher["create_region"] = self._plain(WlRegion)

    def _create_surface(self, parent: Res, new_id: int) -> None:
        res = self._new(WlSurface, parent, new_id)
        surface = Surface(res)
        self.surfaces[wlfix.address(res._ptr)] = surface

        def attach(r: Res, buffer: Res | None, x: int, y: int) -> None:
            surface.pending_buffer, surface.attached = buffer, True

        res.dispatcher["attach"] = attach
        res.dispatcher["frame"] = lambda r, new_id: surface.pending_frames.append(self._new(WlCallback, r, new_id))
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
            self.dirty = True
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
        res = self._new(WlShmPool, parent, new_id)
        try:
            pool = shm.Pool(fd, size)
        except shm.ShmError as e:
            parent._post_error(2, str(e))  # wl_shm.error.invalid_fd
            return
        self.pools[wlfix.address(res._ptr)] = pool

        def create_buffer(r: Res, buf_id: int, offset: int, width: int, height: int, stride: int, fmt: int) -> None:  # noqa: PLR0917
            buf_res = self._new(WlBuffer, r, buf_id)
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
        res.dispatcher["create_positioner"] = self._plain(XdgPositioner)
        res.dispatcher["get_xdg_surface"] = self._get_xdg_surface

    def _get_xdg_surface(self, parent: Res, new_id: int, surface_res: Res | None) -> None:
        res = self._new(XdgSurface, parent, new_id)
        s = self.surfaces.get(wlfix.address(surface_res._ptr)) if surface_res is not None else None
        if s is None:
            parent._post_error(2, "get_xdg_surface: not a surface")  # xdg_wm_base.error.role
            return
        s.xdg = res

        def get_toplevel(r: Res, top_id: int) -> None:
            top = self._new(XdgToplevel, r, top_id)
            top.dispatcher["set_title"] = lambda _r, title: setattr(s, "title", title)
            s.toplevel = top

        def ack_configure(r: Res, serial: int) -> None:
            s.acked = True

        res.dispatcher["get_toplevel"] = get_toplevel
        res.dispatcher["ack_configure"] = ack_configure

    def _configure(self, s: Surface) -> None:
        assert s.toplevel is not None and s.xdg is not None
        states = struct.pack("=II", XDG_STATE_FULLSCREEN, XDG_STATE_ACTIVATED)
        wlfix.post_event(s.toplevel, 0, self.canvas.width, self.canvas.height, states)  # xdg_toplevel.configure
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

    def _bind_seat(self, res: Res) -> None:
        wlfix.post_event(res, 0, 0)  # capabilities: none (no input devices are routed yet)


def log(message: str) -> None:
    print(f"nexquelium: {message}", file=sys.stderr, flush=True)
