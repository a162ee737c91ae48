"""Input devices: the kernel's evdev nodes (/dev/input/event*), read as `struct input_event`s.

No library: a device is classified with three ioctls (EVIOCGBIT for its event types, keys and
axes; EVIOCGABS for an absolute axis' range) and its events are 24-byte structs, decoded here
into what the seat needs (`Key`, `Button`, `Motion`, `MoveTo`, `Scroll`), one batch per
SYN_REPORT. (python-evdev does the same in C, but is a Debian package for the system Python only
and would add nothing the compositor uses.) `Watcher` follows /dev/input with inotify, so devices
plugged in or removed while the compositor runs are opened or dropped (a removed device's read
fails with ENODEV, which drops it too).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

EVENT = struct.Struct("=qqHHi")   # struct input_event on 64-bit: timeval, type, code, value
ABSINFO = struct.Struct("=6i")     # value, minimum, maximum, fuzz, flat, resolution
EV_SYN, EV_KEY, EV_REL, EV_ABS = 0, 1, 2, 3
SYN_REPORT, SYN_DROPPED = 0, 3
REL_X, REL_Y, REL_HWHEEL, REL_WHEEL = 0, 1, 6, 8
ABS_X, ABS_Y = 0, 1
KEY_A, KEY_MAX = 30, 0x2FF
BTN_MOUSE, BTN_LEFT, BTN_TASK = 0x110, 0x110, 0x117
BTN_TOUCH = 0x14A


def _ioc_read(nr: int, size: int) -> int:
    return (2 << 30) | (size << 16) | (ord("E") << 8) | nr


def eviocgbit(ev: int, size: int) -> int:
    return _ioc_read(0x20 + ev, size)


def eviocgabs(axis: int) -> int:
    return _ioc_read(0x40 + axis, ABSINFO.size)


def eviocgname(size: int) -> int:
    return _ioc_read(0x06, size)


@dataclass(frozen=True)
class Key:
    code: int       # evdev key code (KEY_*)
    pressed: bool


@dataclass(frozen=True)
class Button:
    code: int       # BTN_LEFT, BTN_RIGHT, ...
    pressed: bool


@dataclass(frozen=True)
class Motion:
    dx: float
    dy: float


@dataclass(frozen=True)
class MoveTo:
    fx: float       # 0..1 of the output (a tablet: QEMU's usb-tablet, virtio-tablet, VirtualBox's)
    fy: float


@dataclass(frozen=True)
class Scroll:
    vertical: float  # wl_pointer.axis units: 10 per wheel click, positive is down
    horizontal: float


InputEvent = Key | Button | Motion | MoveTo | Scroll


@dataclass(frozen=True)
class Capabilities:
    keyboard: bool = False
    pointer: bool = False
    abs_range: tuple[tuple[int, int], tuple[int, int]] | None = None  # (min, max) of ABS_X, ABS_Y


def _bits(data: bytes, n: int) -> bool:
    return n // 8 < len(data) and bool(data[n // 8] & (1 << (n % 8)))


def probe(fd: int) -> Capabilities:
    """What the device behind `fd` is (OSError if it is not an evdev node)."""
    types = fcntl.ioctl(fd, eviocgbit(0, 4), bytes(4))
    keys = fcntl.ioctl(fd, eviocgbit(EV_KEY, KEY_MAX // 8 + 1), bytes(KEY_MAX // 8 + 1)) if _bits(types, EV_KEY) \
        else b""
    keyboard = _bits(keys, KEY_A)
    rel = fcntl.ioctl(fd, eviocgbit(EV_REL, 2), bytes(2)) if _bits(types, EV_REL) else b""
    absb = fcntl.ioctl(fd, eviocgbit(EV_ABS, 8), bytes(8)) if _bits(types, EV_ABS) else b""
    buttons = _bits(keys, BTN_LEFT) or _bits(keys, BTN_TOUCH)
    abs_range = None
    if _bits(absb, ABS_X) and _bits(absb, ABS_Y) and buttons:
        ax = ABSINFO.unpack(fcntl.ioctl(fd, eviocgabs(ABS_X), bytes(ABSINFO.size)))
        ay = ABSINFO.unpack(fcntl.ioctl(fd, eviocgabs(ABS_Y), bytes(ABSINFO.size)))
        if ax[2] > ax[1] and ay[2] > ay[1]:
            abs_range = ((ax[1], ax[2]), (ay[1], ay[2]))
    pointer = (_bits(rel, REL_X) and _bits(rel, REL_Y) and buttons) or abs_range is not None
    return Capabilities(keyboard=keyboard, pointer=pointer, abs_range=abs_range)


@dataclass
class Device:
    """An open input device: `read()` returns the events of every complete SYN_REPORT frame."""
    fd: int
    path: str
    caps: Capabilities
    name: str = ""
    partial: bytes = b""
    frame: list[tuple[int, int, int]] = field(default_factory=list)
    abs_pos: list[int] = field(default_factory=lambda: [0, 0])

    @classmethod
    def open(cls, path: str) -> Device:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            caps = probe(fd)
            name = fcntl.ioctl(fd, eviocgname(256), bytes(256)).split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            os.close(fd)
            raise
        return cls(fd, path, caps, name)

    def read(self) -> list[InputEvent]:
        """Everything readable now. OSError (ENODEV) when the device is gone."""
        out: list[InputEvent] = []
        while True:
            try:
                data = os.read(self.fd, EVENT.size * 64)
            except BlockingIOError:
                return out
            if not data:
                raise OSError(errno.ENODEV, "device closed")
            data = self.partial + data
            whole = len(data) - len(data) % EVENT.size
            self.partial = data[whole:]
            for _s, _us, etype, code, value in EVENT.iter_unpack(data[:whole]):
                out += self.feed(etype, code, value)

    def feed(self, etype: int, code: int, value: int) -> list[InputEvent]:
        """One input_event; a SYN_REPORT turns the frame into events (SYN_DROPPED drops it)."""
        if etype != EV_SYN:
            self.frame.append((etype, code, value))
            return []
        if code == SYN_DROPPED:
            self.frame.clear()
            return []
        if code != SYN_REPORT:
            return []
        frame, self.frame = self.frame, []
        out: list[InputEvent] = []
        dx = dy = wheel = hwheel = 0
        moved_abs = False
        for etype_, code_, value_ in frame:
            if etype_ == EV_KEY and value_ in (0, 1):  # 2 is the kernel's autorepeat: clients repeat themselves
                if BTN_MOUSE <= code_ <= BTN_TASK:
                    out.append(Button(code_, value_ == 1))
                elif code_ == BTN_TOUCH:
                    out.append(Button(BTN_LEFT, value_ == 1))
                elif code_ < BTN_MOUSE or code_ > 0x15F:
                    out.append(Key(code_, value_ == 1))
            elif etype_ == EV_REL:
                if code_ == REL_X:
                    dx += value_
                elif code_ == REL_Y:
                    dy += value_
                elif code_ == REL_WHEEL:
                    wheel -= value_
                elif code_ == REL_HWHEEL:
                    hwheel += value_
            elif etype_ == EV_ABS and code_ in (ABS_X, ABS_Y):
                self.abs_pos[code_] = value_
                moved_abs = True
        if moved_abs and self.caps.abs_range is not None:
            (x0, x1), (y0, y1) = self.caps.abs_range
            out.insert(0, MoveTo((self.abs_pos[0] - x0) / (x1 - x0), (self.abs_pos[1] - y0) / (y1 - y0)))
        if dx or dy:
            out.insert(0, Motion(float(dx), float(dy)))
        if wheel or hwheel:
            out.append(Scroll(10.0 * wheel, 10.0 * hwheel))
        return out

    def close(self) -> None:
        os.close(self.fd)


# --- hotplug: inotify on the device directory --------------------------------------------------------

IN_ATTRIB, IN_CREATE, IN_DELETE = 0x4, 0x100, 0x200
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
INOTIFY_EVENT = struct.Struct("=iIII")   # wd, mask, cookie, len (then the name)


class Watcher:
    """The evdev nodes in `directory` (/dev/input): `scan()` opens new ones and drops vanished
    ones; the inotify fd (`fileno()`) becomes readable when the directory changes."""

    def __init__(self, directory: Path = Path("/dev/input")) -> None:
        self.directory = directory
        self.devices: dict[str, Device] = {}
        self.refused: dict[str, str] = {}   # path -> why (not an input device we use, no access)
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.watching = directory.is_dir() and \
            libc.inotify_add_watch(self.fd, str(directory).encode(), IN_CREATE | IN_DELETE | IN_ATTRIB) >= 0

    def fileno(self) -> int:
        return int(self.fd)

    def drain(self) -> None:
        while True:
            try:
                if not os.read(self.fd, 4096):
                    return
            except BlockingIOError:
                return

    def scan(self) -> tuple[list[Device], list[Device]]:
        """(added, removed) since the last scan."""
        present = {str(p) for p in self.directory.glob("event*")} if self.directory.is_dir() else set()
        removed = [self.devices.pop(p) for p in list(self.devices) if p not in present]
        for dev in removed:
            dev.close()
        added: list[Device] = []
        for path in sorted(present - set(self.devices)):
            try:
                dev = Device.open(path)
            except OSError as e:
                # (a node may appear before its permissions are set: IN_ATTRIB retries it)
                self.refused[path] = e.strerror or str(e)
                continue
            if not (dev.caps.keyboard or dev.caps.pointer):
                dev.close()
                self.refused[path] = "neither a keyboard nor a pointer"
                continue
            self.refused.pop(path, None)
            self.devices[path] = dev
            added.append(dev)
        return added, removed

    def drop(self, dev: Device) -> None:
        if self.devices.get(dev.path) is dev:
            del self.devices[dev.path]
            dev.close()

    def close(self) -> None:
        for dev in self.devices.values():
            dev.close()
        self.devices.clear()
        os.close(self.fd)
