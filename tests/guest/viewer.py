"""A second Wayland client for the booted desktop tests (capsule `viewer`): one xdg toplevel filled
with a solid colour (argv[1], RRGGBB; magenta by default) at the size the compositor configures,
and its keyboard and pointer events printed one per line to its log ("viewer: key 30 1"), so a
test sees which client the compositor routed input to. It answers every key press with a new
frame at once (the same colour): the floor of the compositor's input-to-frame figure, against
which tests/bench/input_frame.py puts the dashboard's. Answers pings; exits when the compositor
goes away."""

from __future__ import annotations

import mmap
import os
import sys
from typing import Any

from pywayland.client import Display
from pywayland.protocol.wayland import WlCompositor, WlSeat, WlShm
from pywayland.protocol.xdg_shell import XdgWmBase


def say(*words: object) -> None:
    print("viewer:", *words, flush=True)


def main() -> None:
    colour = bytes.fromhex(sys.argv[1] if len(sys.argv) > 1 else "e040e0")
    pixel = bytes((colour[2], colour[1], colour[0], 0xFF))
    display = Display(os.environ.get("WAYLAND_DISPLAY", "wayland-0"))
    display.connect()
    registry = display.get_registry()
    found: dict[str, int] = {}
    registry.dispatcher["global"] = lambda _r, name, iface, _v: found.__setitem__(iface, name)
    display.roundtrip()
    compositor = registry.bind(found["wl_compositor"], WlCompositor, 4)
    shm = registry.bind(found["wl_shm"], WlShm, 1)
    wm = registry.bind(found["xdg_wm_base"], XdgWmBase, 1)
    wm.dispatcher["ping"] = lambda w, serial: w.pong(serial)
    seat = registry.bind(found["wl_seat"], WlSeat, 4)
    surface = compositor.create_surface()
    xdg = wm.get_xdg_surface(surface)
    top = xdg.get_toplevel()
    top.set_title("viewer")
    size = [0, 0]
    kept: list[Any] = [seat]
    last: list[Any] = []

    def on_caps(s: Any, caps: int) -> None:
        if caps & 2 and len(kept) == 1:
            kb = s.get_keyboard()

            def keymap(_k: Any, fmt: int, fd: int, n: int) -> None:
                say("keymap", fmt, n)
                os.close(fd)

            kb.dispatcher["keymap"] = keymap
            kb.dispatcher["enter"] = lambda *_a: say("enter")
            kb.dispatcher["leave"] = lambda *_a: say("leave")

            def on_key(_k: Any, _serial: int, _t: int, key: int, state: int) -> None:
                say("key", key, state)
                if state == 1:
                    draw()

            kb.dispatcher["key"] = on_key
            kb.dispatcher["modifiers"] = lambda *_a: None
            kb.dispatcher["repeat_info"] = lambda *_a: None
            kept.append(kb)
        if caps & 1 and len(kept) == 2:
            ptr = s.get_pointer()
            ptr.dispatcher["enter"] = lambda _p, _serial, _s, x, y: say("pointer-enter", round(x), round(y))
            ptr.dispatcher["leave"] = lambda *_a: say("pointer-leave")
            ptr.dispatcher["motion"] = lambda *_a: None
            ptr.dispatcher["button"] = lambda _p, _serial, _t, button, state: say("button", button, state)
            ptr.dispatcher["axis"] = lambda *_a: None
            kept.append(ptr)

    seat.dispatcher["capabilities"] = on_caps
    seat.dispatcher["name"] = lambda *_a: None

    def on_configure(_t: Any, width: int, height: int, _states: bytes) -> None:
        if width > 0 and height > 0:
            size[:] = [width, height]

    def on_xdg_configure(x: Any, serial: int) -> None:
        x.ack_configure(serial)
        say("shown", *draw())

    def draw() -> tuple[int, int]:
        w, h = size if size[0] else (640, 480)
        fd = os.memfd_create("viewer", os.MFD_CLOEXEC)
        os.ftruncate(fd, w * h * 4)
        with mmap.mmap(fd, w * h * 4) as m:
            m[:] = pixel * (w * h)
        pool = shm.create_pool(fd, w * h * 4)
        os.close(fd)
        buffer = pool.create_buffer(0, w, h, w * 4, 1)
        pool.destroy()
        surface.attach(buffer, 0, 0)
        surface.damage(0, 0, w, h)
        surface.commit()
        if last:
            last.pop().destroy()  # (the compositor copied it at its commit)
        last.append(buffer)
        return w, h

    top.dispatcher["configure"] = on_configure
    xdg.dispatcher["configure"] = on_xdg_configure
    surface.commit()
    try:
        while display.dispatch(block=True) >= 0:
            pass
    except RuntimeError as e:  # the compositor went away
        say("disconnected:", e)


if __name__ == "__main__":
    main()
