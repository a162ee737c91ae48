"""Nexquelium and the dashboard on the host: pywayland's server-side bugs and their fixes (each
fix has a test that fails without it), the compositor with real Wayland clients, and the whole
chain (exo_init -> compositor + dashboard capsules -> offscreen PNG) with real processes."""

from __future__ import annotations

import mmap
import os
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
from pywayland.protocol.wayland import WlCompositor, WlShm
from pywayland.protocol.xdg_shell import XdgToplevel, XdgWmBase
from pywayland.server.display import Display as ServerDisplay
from pywayland.server.eventloop import EventLoop

from exo_init.system import dashboard as dash
from exo_init.system.nexquelium import backends, wlfix
from exo_init.system.nexquelium.compositor import XDG_STATE_ACTIVATED, XDG_STATE_FULLSCREEN, Compositor
from qemu.build import PYWAYLAND, pywayland_dir
from qemu.util import cache_dir
from tests.exo import ExoInit
from tests.pixels import SYSTEM_PY, Picture, classify, close, load_png

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
    def __init__(self, tmp: Path, width: int = 160, height: int = 120) -> None:
        self.socket = tmp / "wl"
        self.png = tmp / "frame.png"
        self.comp = Compositor(backends.Offscreen(self.png, width, height))
        self.comp.listen(self.socket)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.comp.run, kwargs={"until": self.stop.is_set}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.comp.close()


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
        registry = self.d.get_registry()
        self.globals: dict[str, int] = {}
        registry.dispatcher["global"] = lambda _r, name, iface, _v: self.globals.__setitem__(iface, name)
        self.d.roundtrip()
        self.compositor = registry.bind(self.globals["wl_compositor"], WlCompositor, 4)
        self.shm = registry.bind(self.globals["wl_shm"], WlShm, 1)
        self.formats: list[int] = []
        self.shm.dispatcher["format"] = lambda _s, fmt: self.formats.append(fmt)
        wm = registry.bind(self.globals["xdg_wm_base"], XdgWmBase, 1)
        self.surface = self.compositor.create_surface()
        xdg = wm.get_xdg_surface(self.surface)
        top = xdg.get_toplevel()
        top.set_title(title)
        self.configure: tuple[int, int, bytes] | None = None
        self.serial: int | None = None
        top.dispatcher["configure"] = lambda _t, w, h, states: setattr(self, "configure", (w, h, states))

        def on_xdg(x: Any, serial: int) -> None:
            x.ack_configure(serial)
            self.serial = serial

        xdg.dispatcher["configure"] = on_xdg
        self.surface.commit()
        self.d.roundtrip()

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
        assert client.configure == (160, 120, struct.pack("=II", XDG_STATE_FULLSCREEN, XDG_STATE_ACTIVATED))
        assert client.serial is not None and client.formats == [0, 1]
        assert [s.title for s in running.comp.surfaces.values()] == ["first"]
        client.show((200, 30, 40))
        assert running.comp.canvas.pixel(80, 60) == (200, 30, 40)
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
    wait(lambda: running.comp.canvas.pixel(80, 60) == tuple(reversed(backends.BACKGROUND)), 5, "background again")
    second = Client(running.socket, "second")  # and the compositor still serves
    try:
        second.show((0, 0, 250))
        assert running.comp.canvas.pixel(1, 1) == (0, 0, 250)
    finally:
        second.close()


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


def swatches(pic: Picture, count: int) -> list[str | None]:
    return [classify(pic.rgb(*dash.swatch_centre(i)), dash.STATE_COLOURS) for i in range(count)]


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
    """With more capsules than rows, PID 1 is asked for the figures of the rows shown; the names
    (no figures) are re-read only when the set of capsules changed."""
    e = ExoInit(tmp_path / "exo", {"capsules": {f"c{i}": {"argv": ["/bin/sleep", "1000"]} for i in range(6)}})
    try:
        for i in range(6):
            e.wait_state(f"c{i}", "ready", 30)
        collector = dash.Collector(e.runtime / "control.sock", rows=3)
        snap = collector.snapshot()
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
