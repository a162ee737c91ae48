"""nexquelium: the compositor as a program (the `nexquelium` capsule).

    python3 -m exo_init.system.nexquelium [--backend auto|fbdev|offscreen] [--socket PATH]
                                   [--output PNG] [--size WxH] [--fb DEVICE] [--input DIR]
                                   [--keymap LAYOUT]

Input devices are the evdev nodes in --input (/dev/input: the capsule's grant), followed as they
come and go. The keymap is xkbcommon's for the given layout (evdev rules, pc105).

Ready (sd_notify) once the socket listens and the first frame is on the output. The first frame
that shows a client is logged with the seconds since the kernel started (/proc/uptime).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path

from exo_init.lib.notify import sd_notify
from exo_init.system.nexquelium.backends import Backend, BackendError, Fbdev, Offscreen
from exo_init.system.nexquelium.compositor import Compositor, latency_summary, log
from exo_init.system.nexquelium.devices import Watcher
from exo_init.system.nexquelium.xkb import Keymap, Layout, XkbError

DEFAULT_SOCKET = Path("/run/exosphere/wayland/wayland-0")
DEFAULT_OUTPUT = Path("/run/exosphere/nexquelium/frame.png")
DEFAULT_CLIENTS = Path("/run/exosphere/display/clients.json")  # exo_init's Config.display_clients
KDSETMODE = 0x4B3A
KD_TEXT, KD_GRAPHICS = 0, 1
GRAPHICS_TTY = Path("/dev/tty1")   # the VT the framebuffer console shows (console=tty0)


def uptime() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def text_console_off() -> int | None:
    """Keep the kernel's text console (and its cursor) off the framebuffer: KD_GRAPHICS on the
    VT, the escape that hides the cursor as well, and no cursor blink. Returns the tty fd (for
    KD_TEXT on exit) or None."""
    try:
        Path("/sys/class/graphics/fbcon/cursor_blink").write_text("0")
    except OSError:
        pass
    try:
        fd = os.open(GRAPHICS_TTY, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        log(f"{GRAPHICS_TTY}: {e.strerror}; the text console may draw over the output")
        return None
    try:
        os.write(fd, b"\033[?25l")
        fcntl.ioctl(fd, KDSETMODE, KD_GRAPHICS)
    except OSError as e:
        log(f"{GRAPHICS_TTY}: KDSETMODE: {e.strerror}")
    return fd


def open_backend(args: argparse.Namespace) -> Backend:
    width, height = (int(v) for v in args.size.split("x", 1))
    if args.backend in ("auto", "fbdev"):
        try:
            return Fbdev(Path(args.fb))
        except BackendError as e:
            if args.backend == "fbdev":
                raise
            log(f"no framebuffer ({e}): rendering offscreen to {args.output}")
    return Offscreen(Path(args.output), width, height)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="nexquelium", description="A pywayland compositor")
    p.add_argument("--backend", choices=("auto", "fbdev", "offscreen"), default="auto")
    p.add_argument("--socket", default=str(DEFAULT_SOCKET))
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="PNG file of the offscreen backend")
    p.add_argument("--size", default="1024x768", help="offscreen output size")
    p.add_argument("--fb", default="/dev/fb0")
    p.add_argument("--input", default="/dev/input", help="the directory of the evdev device nodes")
    p.add_argument("--keymap", default="us", help="the XKB layout (us, de, fr, ...)")
    p.add_argument("--clients", default=str(DEFAULT_CLIENTS),
                   help="PID 1's {uid: capsule} of the display capsules (JSON), to name the views")
    args = p.parse_args(argv)
    try:
        keymap = Keymap(Layout(layout=args.keymap))
    except XkbError as e:
        log(str(e))
        sys.exit(1)
    try:
        backend = open_backend(args)
    except BackendError as e:
        log(str(e))
        sys.exit(1)
    watcher = Watcher(Path(args.input))
    if not watcher.watching:
        log(f"{args.input}: not there (no input grant?): no keyboard, no pointer")
    tty = text_console_off() if backend.name == "fbdev" else None
    started = time.monotonic()
    first_client: list[float] = []

    reported = [0.0, 0]  # when the input latency was last put in STATUS, and the sample count then

    def on_present(comp: Compositor, shown: bool) -> None:
        n = comp.inputs_answered
        if n and n != reported[1] and time.monotonic() - reported[0] >= 1.0:
            sd_notify(f"STATUS={backend.name} {backend.width}x{backend.height}; input to frame (median/max): "
                      f"{latency_summary(comp.latencies)}")
            reported[:] = [time.monotonic(), n]
        if comp.frames_presented == 1:
            sd_notify(f"READY=1\nSTATUS={backend.name} {backend.width}x{backend.height}")
            log(f"ready: {backend.name} {backend.width}x{backend.height}, socket {args.socket}, "
                f"{time.monotonic() - started:.2f} s after start, {uptime():.2f} s after kernel start")
        if shown and not first_client:
            first_client.append(uptime())
            titles = ", ".join(repr(s.title) for s in comp.surfaces.values() if s.image is not None)
            log(f"first client frame ({titles}): {first_client[0]:.2f} s after kernel start")
            sd_notify(f"STATUS={backend.name} {backend.width}x{backend.height}; first client frame "
                      f"{first_client[0]:.2f} s after kernel start")

    def client_name(_pid: int, uid: int) -> str | None:
        try:
            clients = json.loads(Path(args.clients).read_text())
        except (OSError, ValueError):
            return None
        name = clients.get(str(uid)) if isinstance(clients, dict) else None
        return name if isinstance(name, str) else None

    comp = Compositor(backend, on_present, keymap=keymap, watcher=watcher, client_name=client_name)
    for path, why in sorted(watcher.refused.items()):
        log(f"input: {path} not used: {why}")
    comp.listen(Path(args.socket))

    def stop(_sig: int, _frame: object) -> None:
        comp.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        comp.run()
    finally:
        comp.close()
        if tty is not None:
            try:
                fcntl.ioctl(tty, KDSETMODE, KD_TEXT)
            except OSError:
                pass
            os.close(tty)
    log(f"stopped after {comp.frames_presented} frames")


if __name__ == "__main__":
    main()
