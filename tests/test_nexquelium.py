"""Nexquelium and the dashboard on the host: pywayland's server-side bugs and their fixes (each
fix has a test that fails without it), the compositor with real Wayland clients, and the whole
chain (exo_init -> compositor + dashboard capsules -> offscreen PNG) with real processes."""

from __future__ import annotations

import mmap
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pywayland import ffi, lib
from pywayland.client import Display as ClientDisplay
from pywayland.protocol.wayland import WlCompositor, WlSeat, WlShm
from pywayland.protocol.xdg_shell import XdgToplevel, XdgWmBase
from pywayland.server.display import Display as ServerDisplay
from pywayland.server.eventloop import EventLoop

from exo_init.client.control import call as control_call
from exo_init.pid1.capsule import State
from exo_init.system import dashboard as dash
from exo_init.system.nexquelium import backends, devices, wlfix
from exo_init.system.nexquelium.compositor import (
    BAR_H,
    TAB_ACTIVE,
    XDG_STATE_ACTIVATED,
    XDG_STATE_MAXIMIZED,
    Compositor,
    latency_summary,
)
from qemu.build import PYWAYLAND, pywayland_dir
from qemu.util import cache_dir
from tests.bench.input_frame import parse_figures
from tests.exo import ExoInit
from tests.pixels import SYSTEM_PY, Picture, classify, close, colour_name, load_png, readme_state_colours, shown_state

REPO = Path(__file__).resolve().parent.parent


def test_pinned_version_is_the_one_fixed() -> None:
    import pywayland

    assert pywayland.__version__ == wlfix.PYWAYLAND_VERSION == PYWAYLAND.split("==")[1]


# --- the upstream bugs, as shipped (these fail once pywayland fixes them: then drop the fix) ------

def test_upstream_new_id_is_decoded_as_a_client_proxy() -> None:
    args: Any = ffi.new("union wl_argument []", 1)
    args[0].n = 7
    create_surface = WlCompositor.requests[0]
    with pytest.raises(RuntimeError, match="Cannot find display"):
        create_surface.c_to_arguments(args)
    assert wlfix.decode(create_surface, args) == [7]  # fix 2


def test_upstream_array_events_cannot_be_built() -> None:
    configure = XdgToplevel.events[0]
    with pytest.raises(ValueError, match="unknown size"):
        configure.arguments_to_c(640, 480, struct.pack("=I", XDG_STATE_ACTIVATED))


def test_upstream_event_loop_has_no_fd() -> None:
    assert not hasattr(EventLoop, "get_fd") and not hasattr(lib, "wl_event_loop_get_fd")
    display = ServerDisplay()
    try:
        fd = wlfix.event_loop_fd(display.get_event_loop())  # fix 5
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventpoll]"
    finally:
        display.destroy()


# --- a compositor in this process (a thread), real clients over a real socket ----------------------

class Running:
    def __init__(self, tmp: Path, width: int = 160, height: int = 120, **options: Any) -> None:
        self.socket = tmp / "wl"
        self.png = tmp / "frame.png"
        self.comp = Compositor(backends.Offscreen(self.png, width, height), **options)
        # A keyboard and a tablet: the compositor's evdev decoding, fed input_event structs
        # through a pipe (the host has no /dev/input; the booted tests use real devices).
        read_end, self.input = os.pipe()
        os.set_blocking(read_end, False)
        self.device = devices.Device(read_end, "pipe", devices.Capabilities(
            keyboard=True, pointer=True, abs_range=((0, 32767), (0, 32767))), "test input")
        self.comp.add_device(self.device)
        self.comp.listen(self.socket)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.comp.run, kwargs={"until": self.stop.is_set}, daemon=True)
        self.thread.start()

    def send(self, *events: tuple[int, int, int]) -> None:
        """input_events (type, code, value), then SYN_REPORT."""
        data = b"".join(devices.EVENT.pack(0, 0, t, c, v) for t, c, v in events)
        os.write(self.input, data + devices.EVENT.pack(0, 0, devices.EV_SYN, devices.SYN_REPORT, 0))

    def key(self, code: int, pressed: bool) -> None:
        self.send((devices.EV_KEY, code, int(pressed)))

    def point(self, x: int, y: int) -> None:
        """The tablet to output pixel (x, y)."""
        w, h = self.comp.canvas.width - 1, self.comp.canvas.height - 1
        self.send((devices.EV_ABS, devices.ABS_X, round(x * 32767 / w)),
                  (devices.EV_ABS, devices.ABS_Y, round(y * 32767 / h)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.comp.close()
        os.close(self.input)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = Running(tmp_path)
    yield r
    r.close()


def wait(cond: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)


class Client:
    """A minimal xdg toplevel client (pywayland's client side works as shipped)."""

    def __init__(self, path: Path, title: str) -> None:
        self.d = ClientDisplay(str(path))
        self.d.connect()
        registry = self.registry = self.d.get_registry()
        self.globals: dict[str, int] = {}
        registry.dispatcher["global"] = lambda _r, name, iface, _v: self.globals.__setitem__(iface, name)
        self.d.roundtrip()
        self.compositor = registry.bind(self.globals["wl_compositor"], WlCompositor, 4)
        self.shm = registry.bind(self.globals["wl_shm"], WlShm, 1)
        self.formats: list[int] = []
        self.shm.dispatcher["format"] = lambda _s, fmt: self.formats.append(fmt)
        wm = registry.bind(self.globals["xdg_wm_base"], XdgWmBase, 1)
        wm.dispatcher["ping"] = lambda w, serial: w.pong(serial)
        self.surface = self.compositor.create_surface()
        xdg = wm.get_xdg_surface(self.surface)
        top = xdg.get_toplevel()
        top.set_title(title)
        self.configure: tuple[int, int, bytes] | None = None
        self.serial: int | None = None
        top.dispatcher["configure"] = lambda _t, w, h, states: setattr(self, "configure", (w, h, states))
        self.kept = [wm, xdg, top]  # (a proxy pywayland collects gets no more events: no pong, no configure)

        def on_xdg(x: Any, serial: int) -> None:
            x.ack_configure(serial)
            self.serial = serial

        xdg.dispatcher["configure"] = on_xdg
        self.surface.commit()
        self.d.roundtrip()
        self.events: list[tuple[Any, ...]] = []   # keyboard and pointer events, in order
        self.keymap: bytes = b""

    def input(self) -> None:
        """Bind the seat and get its keyboard and pointer; their events go to `events`."""
        seat = self.registry.bind(self.globals["wl_seat"], WlSeat, 4)
        self.caps: list[int] = []
        seat.dispatcher["capabilities"] = lambda _s, caps: self.caps.append(caps)
        seat.dispatcher["name"] = lambda _s, name: None
        kb = seat.get_keyboard()
        self.proxies = [seat, kb]  # (a proxy pywayland collects gets no more events)

        def on_keymap(_k: Any, fmt: int, fd: int, size: int) -> None:
            self.keymap_fd = fd
            with mmap.mmap(fd, size, mmap.MAP_PRIVATE, mmap.PROT_READ) as m:
                self.keymap = m[:]
            self.events.append(("keymap", fmt, size))

        kb.dispatcher["keymap"] = on_keymap
        kb.dispatcher["enter"] = lambda _k, _serial, surface, keys: self.events.append(
            ("enter", surface == self.surface, sorted(struct.unpack(f"={len(keys) // 4}I", keys))))
        kb.dispatcher["leave"] = lambda _k, _serial, surface: self.events.append(("leave", surface == self.surface))
        kb.dispatcher["key"] = lambda _k, _serial, _t, key, state: self.events.append(("key", key, state))
        kb.dispatcher["modifiers"] = lambda _k, _serial, dep, lat, lock, group: self.events.append(
            ("modifiers", dep, lat, lock, group))
        kb.dispatcher["repeat_info"] = lambda _k, rate, delay: self.events.append(("repeat_info", rate, delay))
        ptr = seat.get_pointer()
        self.proxies.append(ptr)
        ptr.dispatcher["enter"] = lambda _p, _serial, surface, x, y: self.events.append(
            ("pointer_enter", surface == self.surface, round(x), round(y)))
        ptr.dispatcher["leave"] = lambda _p, _serial, surface: self.events.append(("pointer_leave",))
        ptr.dispatcher["motion"] = lambda _p, _t, x, y: self.events.append(("motion", round(x), round(y)))
        ptr.dispatcher["button"] = lambda _p, _serial, _t, button, state: self.events.append(("button", button, state))
        self.d.roundtrip()

    def wait_for(self, event: tuple[Any, ...], timeout: float = 5) -> None:
        end = time.monotonic() + timeout
        while event not in self.events:
            assert time.monotonic() < end, f"{event} not received within {timeout} s: {self.events}"
            self.d.dispatch(block=False)
            self.d.roundtrip()
            time.sleep(0.01)

    def show(self, colour: tuple[int, int, int]) -> int:
        """Fill a buffer with `colour`, commit it with a frame callback; returns the callback time."""
        assert self.configure is not None
        w, h, _ = self.configure
        fd = os.memfd_create("test-buffer")
        os.ftruncate(fd, w * h * 4)
        pixels = mmap.mmap(fd, w * h * 4)
        pixels[:] = bytes((colour[2], colour[1], colour[0], 255)) * (w * h)
        pool = self.shm.create_pool(fd, w * h * 4)
        os.close(fd)
        buf = pool.create_buffer(0, w, h, w * 4, 1)
        released: list[bool] = []
        buf.dispatcher["release"] = lambda _b: released.append(True)
        done: list[int] = []
        cb = self.surface.frame()
        cb.dispatcher["done"] = lambda _c, t: done.append(t)
        self.surface.attach(buf, 0, 0)
        self.surface.damage(0, 0, w, h)
        self.surface.commit()
        end = time.monotonic() + 10
        while not (done and released):
            assert time.monotonic() < end, "no frame callback / release within 10 s"
            self.d.dispatch(block=True)
        return done[0]

    def close(self) -> None:
        self.d.disconnect()


def test_requests_reach_the_compositor_and_configure_carries_its_states(running: Running) -> None:
    """Fixes 1 (requests dispatched at all), 2 (new_id and object arguments) and 3 (the states array)."""
    client = Client(running.socket, "first")
    try:
        assert set(client.globals) >= {"wl_compositor", "wl_shm", "xdg_wm_base", "wl_output", "wl_seat"}
        # Maximized to the output above the view bar; activated once it is shown.
        assert client.configure == (160, 120 - BAR_H, struct.pack("=I", XDG_STATE_MAXIMIZED))
        assert client.serial is not None and client.formats == [0, 1]
        assert [s.title for s in running.comp.surfaces.values()] == ["first"]
        client.show((200, 30, 40))
        client.d.roundtrip()
        assert client.configure == (160, 120 - BAR_H, struct.pack("=II", XDG_STATE_MAXIMIZED, XDG_STATE_ACTIVATED))
        assert running.comp.canvas.pixel(40, 30) == (200, 30, 40)
        wait(lambda: running.png.exists() and load_png(running.png).rgb(5, 5) == (200, 30, 40), 10, "PNG frame")
    finally:
        client.close()


def test_a_disconnected_client_leaves_nothing_behind(running: Running) -> None:
    """Fix 4: libwayland destroys a leaving client's resources; the Python side forgets them."""
    before = len(wlfix.LIVE)
    client = Client(running.socket, "leaving")
    client.show((10, 200, 10))
    wait(lambda: len(running.comp.surfaces) == 1, 5, "the surface")
    resources = [r for r in wlfix.LIVE.values()]
    client.close()
    wait(lambda: not running.comp.surfaces and len(wlfix.LIVE) == before, 5, "resources released")
    assert all(r._ptr is None for r in resources if r not in wlfix.LIVE.values())
    wait(lambda: running.comp.canvas.pixel(40, 30) == tuple(reversed(backends.BACKGROUND)), 5, "background again")
    second = Client(running.socket, "second")  # and the compositor still serves
    try:
        second.show((0, 0, 250))
        assert running.comp.canvas.pixel(1, 1) == (0, 0, 250)
    finally:
        second.close()


# --- input, several views ------------------------------------------------------------------------------

KEY_A, KEY_LEFTSHIFT, KEY_LEFTALT, KEY_TAB = 30, 42, 56, 15
RED, BLUE = (200, 30, 40), (20, 40, 220)


def test_keymap_and_keys_reach_only_the_active_view(running: Running) -> None:
    first, second = Client(running.socket, "first"), Client(running.socket, "second")
    try:
        for c in (first, second):
            c.input()
            c.wait_for(("keymap", 1, len(running.comp.keymap.text)))
            c.wait_for(("repeat_info", 25, 600))
            assert c.caps[-1] == 3  # pointer | keyboard: the device is there
            # The keymap is xkbcommon's text (a C string), in a memfd the client cannot change.
            assert c.keymap.startswith(b"xkb_keymap {") and c.keymap.endswith(b"};\n\0"), c.keymap[-20:]
            assert b"<AC01>" in c.keymap  # the key of evdev code 30 (KEY_A) on a pc105 keyboard
            with pytest.raises(PermissionError):
                os.pwrite(c.keymap_fd, b"X", 0)
            os.close(c.keymap_fd)
        first.show(RED)
        first.wait_for(("enter", True, []))
        second.show(BLUE)  # the newest view is active: shown, and it has the keyboard
        second.wait_for(("enter", True, []))
        first.wait_for(("leave", True))
        wait(lambda: running.comp.canvas.pixel(40, 30) == BLUE, 5, "the second view shown")
        running.key(KEY_LEFTSHIFT, True)
        running.key(KEY_A, True)
        running.key(KEY_A, False)
        running.key(KEY_LEFTSHIFT, False)
        second.wait_for(("modifiers", 1, 0, 0, 0))  # Shift depressed
        second.wait_for(("key", KEY_A, 1))
        second.wait_for(("key", KEY_A, 0))
        second.wait_for(("modifiers", 0, 0, 0, 0))
        first.d.roundtrip()
        assert not [e for e in first.events if e[0] in ("key", "modifiers") and e[1:] != (0, 0, 0, 0)], first.events
        # Alt+Tab: the compositor's chord. The first view comes back, gets the keyboard (with Alt
        # held, as enter's key array says), the second loses it; Tab reaches nobody.
        running.key(KEY_LEFTALT, True)
        running.key(KEY_TAB, True)
        running.key(KEY_TAB, False)
        first.wait_for(("enter", True, [KEY_LEFTALT]))
        second.wait_for(("leave", True))
        running.key(KEY_LEFTALT, False)
        first.wait_for(("key", KEY_LEFTALT, 0))
        wait(lambda: running.comp.canvas.pixel(40, 30) == RED, 5, "the first view shown again")
        for c in (first, second):
            c.d.roundtrip()
            assert ("key", KEY_TAB, 1) not in c.events and ("key", KEY_TAB, 0) not in c.events
        assert ("key", KEY_LEFTALT, 0) not in second.events  # the release went to the new focus only
    finally:
        first.close()
        second.close()


def test_pointer_enters_the_view_and_the_bar_switches_views(running: Running) -> None:
    first, second = Client(running.socket, "first"), Client(running.socket, "second")
    try:
        first.input()
        second.input()
        first.show(RED)
        second.show(BLUE)
        second.wait_for(("pointer_enter", True, 80, 60))  # the pointer starts at the output's centre
        running.point(30, 20)
        second.wait_for(("motion", 30, 20))
        running.point(50, 25)
        second.wait_for(("motion", 50, 25))
        running.send((devices.EV_KEY, devices.BTN_LEFT, 1))
        running.send((devices.EV_KEY, devices.BTN_LEFT, 0))
        second.wait_for(("button", devices.BTN_LEFT, 1))
        second.wait_for(("button", devices.BTN_LEFT, 0))
        # Into the bar: the view loses the pointer; a click on the first name activates that view.
        views = running.comp.views()
        assert [v.label for v in views] == ["first", "second"]
        running.point(10, 120 - BAR_H // 2)
        second.wait_for(("pointer_leave",))
        wait(lambda: running.comp.canvas.pixel(80 + 3, 120 - 4) == TAB_ACTIVE
             and running.comp.canvas.pixel(3, 120 - 4) != TAB_ACTIVE, 5, "the second name marked")
        running.send((devices.EV_KEY, devices.BTN_LEFT, 1))
        running.send((devices.EV_KEY, devices.BTN_LEFT, 0))
        first.wait_for(("enter", True, []))
        wait(lambda: running.comp.canvas.pixel(40, 30) == RED, 5, "the first view shown")
        wait(lambda: running.comp.canvas.pixel(3, 120 - 4) == TAB_ACTIVE, 5, "the first name marked")
        running.point(40, 40)
        first.wait_for(("pointer_enter", True, 40, 40))
        second.d.roundtrip()
        assert ("button", devices.BTN_LEFT, 1) not in first.events  # the bar's click is the compositor's
        # The cursor is drawn over the view.
        wait(lambda: running.comp.canvas.pixel(40, 42) == (0, 0, 0), 5, "the cursor")
    finally:
        first.close()
        second.close()


def test_input_to_frame_latency_is_measured(running: Running) -> None:
    """A key press reaches the active client; its next committed frame, once presented, is a sample
    of that view's. A release (or a motion) is not timed: a client need not redraw for it, and the
    next frame it commits for other reasons answers nothing."""
    client = Client(running.socket, "typist")
    try:
        client.input()
        client.show(RED)
        client.wait_for(("enter", True, []))
        assert not running.comp.latencies
        running.key(KEY_A, True)
        client.wait_for(("key", KEY_A, 1))
        t0 = time.monotonic()
        client.show(BLUE)  # the answer to the key (returns once its frame callback came)
        wait(lambda: running.comp.inputs_answered == 1, 5, "a latency sample")
        samples = running.comp.latencies["typist"]
        assert len(samples) == 1 and 0 < samples[0] < time.monotonic() - t0 + 5
        client.show(RED)  # no input since: no new sample
        running.key(KEY_A, False)
        client.wait_for(("key", KEY_A, 0))
        client.show(BLUE)  # a frame after the release: not an answer
        assert running.comp.inputs_answered == 1 and len(running.comp.latencies["typist"]) == 1
        assert latency_summary(running.comp.latencies).startswith("typist ")
        summary = latency_summary({"b": [0.010, 0.030, 0.020], "a": [0.5]})
        assert summary == "a 500/500 ms x1, b 20/30 ms x3"
        # what tests/bench/input_frame.py reads back from the compositor's STATUS
        assert parse_figures(f"fbdev 1280x800; input to frame (median/max): {summary}") == \
            {"a": (500, 500, 1), "b": (20, 30, 3)}
        assert parse_figures("fbdev 1280x800") == {}
    finally:
        client.close()


def test_a_crashed_or_stalled_client_loses_its_view_only(tmp_path: Path) -> None:
    running = Running(tmp_path, ping=(0.2, 2.0))
    first, stalled, crashing = (Client(running.socket, t) for t in ("first", "stalled", "crashing"))

    def answering(cond: Any, what: str) -> None:
        """Wait for `cond` while `first` reads its events (and so answers pings)."""
        end = time.monotonic() + 10
        while not cond():
            assert time.monotonic() < end, f"{what}: not within 10 s"
            first.d.dispatch(block=False)
            first.d.roundtrip()
            time.sleep(0.02)

    try:
        first.input()
        first.show(RED)
        stalled.show(BLUE)
        crashing.show((10, 200, 10))
        assert [v.label for v in running.comp.views()] == ["first", "stalled", "crashing"]
        crashing.close()  # a crash: its connection goes
        answering(lambda: [v.label for v in running.comp.views()] == ["first", "stalled"], "the crashed view gone")
        answering(lambda: running.comp.canvas.pixel(40, 30) == BLUE, "the previous view shown")
        # `stalled` reads nothing from now on; `first` goes on answering pings.
        answering(lambda: running.comp.disconnected == ["stalled"], "the stalled client disconnected")
        assert [v.label for v in running.comp.views()] == ["first"]
        answering(lambda: running.comp.canvas.pixel(40, 30) == RED, "the remaining view shown")
        first.wait_for(("enter", True, []))
        running.key(KEY_A, True)
        first.wait_for(("key", KEY_A, 1))
        assert running.comp.disconnected == ["stalled"]
    finally:
        first.close()
        stalled.close()
        running.close()


def test_a_view_is_clipped_to_its_area(running: Running) -> None:
    """A client's buffer bigger than it was told cannot draw over the bar (or anything else)."""
    client = Client(running.socket, "greedy")
    try:
        assert client.configure is not None
        client.configure = (400, 400, b"")  # ignores the configured size
        client.show(RED)
        wait(lambda: running.comp.canvas.pixel(150, 90) == RED, 5, "the view")
        assert running.comp.canvas.pixel(150, 120 - BAR_H) != RED
        assert running.comp.canvas.pixel(150, 119) != RED
    finally:
        client.close()


def test_names_come_from_the_client_name_function(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []

    def name(pid: int, uid: int) -> str | None:
        seen.append((pid, uid))
        return "capsule-x"

    running = Running(tmp_path, client_name=name)
    client = Client(running.socket, "a title")
    try:
        client.show(RED)
        assert [v.label for v in running.comp.views()] == ["capsule-x"]
        assert seen[0] == (os.getpid(), os.getuid())  # the peer's credentials (SO_PEERCRED)
    finally:
        client.close()
        running.close()


def test_evdev_frames_decode_like_the_kernel_sends_them() -> None:
    """Events come out at SYN_REPORT, relative motion is summed, kernel autorepeat (value 2) is
    dropped, SYN_DROPPED discards the frame, a tablet's axes become fractions of the output."""
    dev = devices.Device(-1, "x", devices.Capabilities(keyboard=True, pointer=True, abs_range=((0, 100), (0, 200))))
    assert dev.feed(devices.EV_REL, devices.REL_X, 3) == []
    dev.feed(devices.EV_REL, devices.REL_X, 2)
    dev.feed(devices.EV_REL, devices.REL_Y, -1)
    dev.feed(devices.EV_KEY, KEY_A, 2)
    assert dev.feed(devices.EV_SYN, devices.SYN_REPORT, 0) == [devices.Motion(5.0, -1.0)]
    dev.feed(devices.EV_KEY, KEY_A, 1)
    assert dev.feed(devices.EV_SYN, devices.SYN_DROPPED, 0) == []
    assert dev.feed(devices.EV_SYN, devices.SYN_REPORT, 0) == []
    dev.feed(devices.EV_ABS, devices.ABS_X, 50)
    dev.feed(devices.EV_ABS, devices.ABS_Y, 50)
    dev.feed(devices.EV_KEY, devices.BTN_LEFT, 1)
    dev.feed(devices.EV_REL, devices.REL_WHEEL, 1)
    assert dev.feed(devices.EV_SYN, devices.SYN_REPORT, 0) == [
        devices.MoveTo(0.5, 0.25), devices.Button(devices.BTN_LEFT, True), devices.Scroll(-10.0, 0.0)]


def test_hotplug_watcher_follows_the_directory(tmp_path: Path) -> None:
    """inotify wakes the compositor when a node appears; a node that is not an evdev device is
    refused, with the reason."""
    import selectors

    w = devices.Watcher(tmp_path)
    try:
        assert w.watching
        sel = selectors.DefaultSelector()
        sel.register(w.fileno(), selectors.EVENT_READ)
        assert sel.select(0) == []
        (tmp_path / "event7").write_bytes(b"")
        assert sel.select(2), "no inotify wake-up"
        w.drain()
        assert w.scan() == ([], [])
        assert w.refused == {str(tmp_path / "event7"): "Inappropriate ioctl for device"}
        assert not w.devices
        sel.close()
    finally:
        w.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the upstream bug, on purpose
def test_without_adopt_no_request_arrives() -> None:
    """Fix 1: a pywayland Resource as created upstream (NULL implementation) never sees a request;
    the same resource adopted does."""
    import socket

    display = ServerDisplay()
    calls: list[str] = []
    fixed = [False]

    def bind(resource: Any) -> None:
        tag = "fixed" if fixed[0] else "upstream"
        resource.dispatcher["create_surface"] = lambda _r, _id: calls.append(tag)
        if fixed[0]:
            wlfix.adopt(resource)
        else:
            kept.append(resource)  # (kept alive by hand: fix 4 is not under test here)

    kept: list[Any] = []
    g = WlCompositor.global_class(display, 4)
    g.bind_func = bind  # type: ignore[assignment]  # (annotated as a type upstream; it is a callable)
    server_end, client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    assert display._ptr is not None
    lib.wl_client_create(display._ptr, server_end.detach())
    loop = display.get_event_loop()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            loop.dispatch(20)
            display.flush_clients()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = ClientDisplay(client_end.detach())
    try:
        client.connect()
        registry = client.get_registry()
        names: dict[str, int] = {}
        registry.dispatcher["global"] = lambda _r, name, iface, _v: names.__setitem__(iface, name)
        client.roundtrip()
        registry.bind(names["wl_compositor"], WlCompositor, 4).create_surface()
        client.roundtrip()
        assert calls == []                  # upstream: the request is lost
        fixed[0] = True
        registry.bind(names["wl_compositor"], WlCompositor, 4).create_surface()
        client.roundtrip()
        assert calls == ["fixed"]           # adopted: dispatched
    finally:
        client.disconnect()
        stop.set()
        t.join(5)
        display.destroy()


# --- the whole chain: exo_init runs the compositor and the dashboard as capsules -----------------------

def dashboard_env() -> dict[str, str]:
    return {"PYTHONPATH": f"{REPO}:{pywayland_dir(cache_dir())}"}


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[tuple[ExoInit, Path]]:
    if not os.access(SYSTEM_PY, os.X_OK) or subprocess.run([SYSTEM_PY, "-c", "import cairo"], check=False,
                                                           capture_output=True).returncode != 0:
        pytest.fail(f"{SYSTEM_PY} with python3-cairo is needed (qemu/setup-host installs it)")
    run = Path(f"/tmp/nq-{os.getpid()}")  # short: AF_UNIX paths are limited to 108 bytes
    socket_path, png = run / "wl", tmp_path / "frame.png"
    manifest = {"capsules": {
        "nexquelium": {"argv": [sys.executable, "-m", "exo_init.system.nexquelium", "--backend", "offscreen",
                                "--socket", str(socket_path), "--output", str(png), "--size", "1024x768"],
                       "env": {"PYTHONPATH": str(REPO)}, "readiness": {"kind": "notify"}},
        "dashboard": {"argv": [SYSTEM_PY, "-m", "exo_init.system.dashboard", "--control", "CONTROL"],
                      "env": {**dashboard_env(), "WAYLAND_DISPLAY": str(socket_path)},
                      "requires": ["nexquelium"], "readiness": {"kind": "notify"}},
        "sleeper": {"argv": ["/bin/sleep", "1000"]},
        "done": {"argv": ["/bin/true"], "type": "oneshot"},
        "broken": {"argv": ["/bin/false"], "restart": {"policy": "never"}},
    }}
    # The dashboard needs the control socket's path, which ExoInit makes: write it once known.
    e = ExoInit(tmp_path / "exo", {"capsules": {}})
    manifest["capsules"]["dashboard"]["argv"][-1] = str(e.runtime / "control.sock")  # type: ignore[index]
    e.write_manifest(manifest)
    e.call("reload")
    try:
        yield e, png
    finally:
        e.close()
        for p in sorted(run.glob("*")):
            p.unlink()
        if run.exists():
            run.rmdir()


README_COLOURS = readme_state_colours((REPO / "README.md").read_text())


def test_readme_gives_every_state_its_own_colour() -> None:
    assert set(README_COLOURS) == set(State), "README names a colour for each capsule state, and only those"
    assert len(set(README_COLOURS.values())) == len(README_COLOURS), README_COLOURS
    named = {"green": (0, 128, 0), "amber": (255, 191, 0), "orange": (255, 165, 0), "grey": (128, 128, 128),
             "blue": (0, 0, 255), "purple": (128, 0, 128), "red": (255, 0, 0)}  # (their usual RGB values)
    assert {name: colour_name(rgb) for name, rgb in named.items()} == {name: name for name in named}


def swatches(pic: Picture, count: int) -> list[str | None]:
    """The state each row's swatch shows, by README's colour for it (not the dashboard's own table)."""
    return [shown_state(pic.rgb(*dash.swatch_centre(i)), README_COLOURS) for i in range(count)]


def test_dashboard_capsule_shows_every_capsule_in_its_state(desktop: tuple[ExoInit, Path]) -> None:
    e, png = desktop
    e.wait_state("dashboard", "ready", 30)
    names = sorted(["nexquelium", "dashboard", "sleeper", "done", "broken"])
    expected = {n: e.status(n)["state"] for n in names}
    assert expected["done"] == "exited" and expected["sleeper"] == "ready", expected

    def shows(states: dict[str, str]) -> bool:
        if not png.exists():
            return False
        pic = load_png(png)
        return close(pic.rgb(700, 4), dash.HEADER) and swatches(pic, len(names)) == [states[n] for n in names]

    wait(lambda: shows({n: e.status(n)["state"] for n in names}), 15, "a row per capsule in its state's colour")
    pic = load_png(png)
    assert (pic.width, pic.height) == (1024, 768)
    assert close(pic.rgb(700, 200), dash.BACKGROUND)
    # The CPU history panel is drawn (its background colour) to the right of the table.
    assert close(pic.rgb(dash.TABLE_W + 100, dash.TABLE_TOP + 20), (32, 37, 48), 4) or \
        classify(pic.rgb(dash.TABLE_W + 100, dash.TABLE_TOP + 20), {"line": dash.PALETTE[0]}) is not None
    # Live: stopping a capsule turns its row grey within a few seconds.
    e.call("stop", name="sleeper")
    t0 = time.monotonic()
    wait(lambda: swatches(load_png(png), len(names))[names.index("sleeper")] == "stopped", 5, "sleeper's row grey")
    print(f"\nsleeper stopped -> grey on the dashboard in {time.monotonic() - t0:.2f} s")


def test_dashboard_asks_for_the_figures_of_the_rows_on_screen_only(tmp_path: Path) -> None:
    """With more capsules than rows and no cgroup files it can read (no cgroups here), PID 1 is
    asked for the figures of the rows shown, every snapshot; the names (no figures) are re-read
    only when the set of capsules changed."""
    e = ExoInit(tmp_path / "exo", {"capsules": {f"c{i}": {"argv": ["/bin/sleep", "1000"]} for i in range(6)}},
                cgroups=False)
    try:
        for i in range(6):
            e.wait_state(f"c{i}", "ready", 30)
        collector = dash.Collector(e.runtime / "control.sock", rows=3)
        snap = collector.snapshot()
        assert collector.files is None
        assert [r.name for r in snap.capsules] == ["c0", "c1", "c2"] and collector.names == [f"c{i}" for i in range(6)]
        names = collector.names
        collector.snapshot()
        assert collector.names is names, "the same set: the names were not asked for again"
        e.write_manifest({"capsules": {f"c{i}": {"argv": ["/bin/sleep", "1000"]} for i in range(1, 6)}})
        e.call("reload")
        e.wait_for(lambda: "c0" not in [s["name"] for s in e.call("status", stats=False)], 10, "c0 removed")
        assert [r.name for r in collector.snapshot().capsules] == ["c1", "c2", "c3"]
    finally:
        e.close()


def test_dashboard_reads_the_figures_itself_and_asks_pid1_for_info_only_while_nothing_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where it can read the capsules' cgroup files (here: the host's cgroup2 tree exo_init puts
    them in), a snapshot at steady state costs PID 1 one `info`; the CPU share comes from the
    capsule's cpu.stat; an event PID 1 published, and FULL_EVERY, make it read the statuses again."""
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "burn": {"argv": ["/bin/sh", "-c", "while :; do :; done"]},
        "idle": {"argv": ["/bin/sleep", "1000"]},
        "other": {"argv": ["/bin/sleep", "1000"]}}})
    asked: list[dict[str, Any]] = []
    real_call = control_call

    def recording(control: Path, request: dict[str, Any], **kw: Any) -> Any:
        asked.append(request)
        return real_call(control, request, **kw)

    monkeypatch.setattr(dash, "call", recording)
    clock = [100.0]
    try:
        for name in ("burn", "idle", "other"):
            e.wait_state(name, "ready", 30)
        collector = dash.Collector(e.runtime / "control.sock", rows=2, clock=lambda: clock[0])
        collector.snapshot()
        assert collector.files is not None, f"the cgroup files under {e.cgroup_root} are readable here"
        status = [r for r in asked if r["op"] == "status" and "names" in r]
        assert status == [{"op": "status", "names": ["burn", "idle"], "stats": False}], asked
        time.sleep(1.0)
        clock[0] += 1.0
        asked.clear()
        snap = collector.snapshot()
        assert [r["op"] for r in asked] == ["info"], f"nothing changed: only info was asked, not {asked}"
        rows = {r.name: r for r in snap.capsules}
        assert set(rows) == {"burn", "idle"}
        # (the share over the last second of this process's clock against the kernel's: a loop
        # on a shared host gets most of a CPU, a sleeper none)
        assert rows["burn"].cpu_percent > 20 and rows["idle"].cpu_percent < 5, rows
        e.call("stop", name="other")  # (not on screen: still an event, the statuses are read again)
        e.wait_state("other", "stopped", 10)
        asked.clear()
        collector.snapshot()
        assert [r["op"] for r in asked] == ["info", "status", "events"], asked
        asked.clear()
        collector.snapshot()
        assert [r["op"] for r in asked] == ["info"], asked
        clock[0] += dash.FULL_EVERY
        asked.clear()
        collector.snapshot()
        assert [r["op"] for r in asked] == ["info", "status", "events"], f"FULL_EVERY passed: {asked}"
    finally:
        e.close()


def test_the_dashboard_stays_connected_while_pid1_does_not_answer(tmp_path: Path) -> None:
    """A control socket that takes the connection and never answers (PID 1 busy): the dashboard
    shows its first frame at once and keeps answering the compositor's pings (here: within 2 s,
    while each of its requests waits 5 s), so it keeps its view."""
    if subprocess.run([SYSTEM_PY, "-c", "import cairo"], check=False, capture_output=True).returncode != 0:
        pytest.fail(f"{SYSTEM_PY} with python3-cairo is needed (qemu/setup-host installs it)")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(tmp_path / "control.sock"))
    silent.listen(64)  # (never accepted: a connection waits in the backlog, unanswered)
    run = Path(f"/tmp/nqs-{os.getpid()}")
    running = Running(run, 1024, 768, ping=(0.5, 2.0))
    dashboard = subprocess.Popen([SYSTEM_PY, "-m", "exo_init.system.dashboard", "--control",
                                  str(tmp_path / "control.sock"), "--display", str(running.socket)],
                                 env=dashboard_env(), cwd=REPO)
    try:
        wait(lambda: running.comp.canvas.pixel(700, 4) == dash.HEADER, 10, "the dashboard's first frame")
        time.sleep(8.0)  # (more than one unanswered request, and four ping timeouts)
        assert [v.title for v in running.comp.views()] == [dash.TITLE], "the dashboard kept its view"
        assert dashboard.poll() is None
    finally:
        dashboard.terminate()
        dashboard.wait(10)
        running.close()
        silent.close()
        for p in sorted(run.glob("*")):
            p.unlink()
        run.rmdir()


def test_the_dashboard_is_driven_by_keyboard_and_pointer(tmp_path: Path) -> None:
    """The real dashboard (a client process) in a compositor fed input events: a click selects a
    capsule's row, the arrow keys move the selection, `r` restarts the selected capsule through
    PID 1 (a real exo_init; the caller is root here: the grant is tested in tests/test_manage.py
    and in the booted image)."""
    if subprocess.run([SYSTEM_PY, "-c", "import cairo"], check=False, capture_output=True).returncode != 0:
        pytest.fail(f"{SYSTEM_PY} with python3-cairo is needed (qemu/setup-host installs it)")
    e = ExoInit(tmp_path / "exo", {"capsules": {"other": {"argv": ["/bin/sleep", "1000"]},
                                                "sleeper": {"argv": ["/bin/sleep", "1000"]}}})
    run = Path(f"/tmp/nqd-{os.getpid()}")
    running = Running(run, 1024, 768)
    dashboard = subprocess.Popen([SYSTEM_PY, "-m", "exo_init.system.dashboard", "--control",
                                  str(e.runtime / "control.sock"), "--display", str(running.socket)],
                                 env=dashboard_env(), cwd=REPO)
    canvas = running.comp.canvas

    def highlighted(row: int) -> bool:
        return canvas.pixel(dash.SWATCH_X + dash.SWATCH_W + 20, dash.row_top(row) + 3) == dash.SELECTED

    try:
        first = e.wait_state("sleeper", "ready", 30)["pid"]
        wait(lambda: [v.title for v in running.comp.views()] == [dash.TITLE], 30, "the dashboard's view")
        wait(lambda: canvas.pixel(700, 4) == dash.HEADER, 30, "the dashboard drawn")
        assert not highlighted(0) and not highlighted(1)
        running.point(200, dash.row_top(1) + 12)
        running.send((devices.EV_KEY, devices.BTN_LEFT, 1))
        running.send((devices.EV_KEY, devices.BTN_LEFT, 0))
        wait(lambda: highlighted(1) and not highlighted(0), 10, "sleeper's row selected by the click")
        running.key(103, True)  # up
        running.key(103, False)
        wait(lambda: highlighted(0) and not highlighted(1), 10, "the selection moved up")
        running.key(108, True)  # down
        running.key(108, False)
        wait(lambda: highlighted(1), 10, "the selection moved down")
        running.key(19, True)   # r: restart
        running.key(19, False)
        wait(lambda: e.status("sleeper")["pid"] != first, 10, "sleeper restarted")
        assert e.status("sleeper")["state"] in ("starting", "ready")
        assert dashboard.poll() is None
    finally:
        dashboard.terminate()
        dashboard.wait(10)
        running.close()
        e.close()
        for p in sorted(run.glob("*")):
            p.unlink()
        run.rmdir()
