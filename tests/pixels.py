"""Read PNG files (the compositor's offscreen frames, QMP screendumps) with pycairo's decoder, and
wait for a booted machine's screen to show something (`wait_for_screen`).

pycairo is Debian's python3-cairo, for the system interpreter (the image's and setup-host's), so
the decoding runs there and the pixels come back as raw bytes."""

from __future__ import annotations

import colorsys
import re
import struct
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.machine import Machine, TestFailure

SYSTEM_PY = "/usr/bin/python3"
_DECODE = """
import cairo, struct, sys
s = cairo.ImageSurface.create_from_png(sys.argv[1])
s.flush()
sys.stdout.buffer.write(struct.pack("=3I", s.get_width(), s.get_height(), s.get_stride()) + bytes(s.get_data()))
"""


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    stride: int
    data: bytes  # cairo ARGB32: B, G, R, A bytes

    def rgb(self, x: int, y: int) -> tuple[int, int, int]:
        i = y * self.stride + x * 4
        b, g, r = self.data[i:i + 3]
        return r, g, b


def load_png(path: Path) -> Picture:
    out = subprocess.run([SYSTEM_PY, "-c", _DECODE, str(path)], capture_output=True, check=True, timeout=60).stdout
    width, height, stride = struct.unpack_from("=3I", out)
    return Picture(width, height, stride, out[12:])


def close(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def classify(colour: tuple[int, int, int], palette: Mapping[str, tuple[int, int, int]]) -> str | None:
    """The name of the palette colour `colour` is close to, or None."""
    return next((name for name, c in palette.items() if close(colour, c)), None)


# Colour names as README uses them, by hue (degrees, [from, to)); a colour with little saturation is
# grey whatever its hue. These are the words' meanings, not the dashboard's palette.
HUES = (("red", 0, 15), ("orange", 15, 40), ("amber", 40, 55), ("yellow", 55, 70), ("green", 70, 170),
        ("cyan", 170, 195), ("blue", 195, 255), ("purple", 255, 335), ("red", 335, 360))


def colour_name(colour: tuple[int, int, int]) -> str:
    """What a person calls `colour`: black, white, grey, or a hue's name (HUES)."""
    hue, saturation, value = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
    if value < 0.15:
        return "black"
    if saturation < 0.25:
        return "white" if value > 0.9 else "grey"
    degrees = hue * 360
    return next(name for name, lo, hi in HUES if lo <= degrees < hi)


def readme_state_colours(readme: str) -> dict[str, str]:
    """README's dashboard sentence "... with its state colour (green ready, grey stopped, ...)":
    state -> colour name."""
    m = re.search(r"with its state colour \(([^)]*)\)", readme)
    if m is None:
        raise AssertionError("README no longer says the dashboard's state colours (\"with its state colour (...)\")")
    pairs = [item.split() for item in m.group(1).split(",")]
    if any(len(p) != 2 for p in pairs):
        raise AssertionError(f"README's state colours are not \"COLOUR STATE, ...\": {m.group(1)!r}")
    return {state: colour for colour, state in pairs}


def shown_state(colour: tuple[int, int, int], state_colours: Mapping[str, str]) -> str | None:
    """The state whose README colour `colour` is, or None."""
    return next((state for state, name in state_colours.items() if name == colour_name(colour)), None)


def screen(machine: Machine, dest: Path) -> Picture:
    """A QMP screendump of a booted machine, decoded."""
    return load_png(machine.screendump(dest))


def wait_for_screen(machine: Machine, dest: Path, check: Callable[[Picture], bool], timeout: float,
                    what: str) -> Picture:
    """Screendumps until `check(picture)` holds (bounded; the last one stays at `dest`)."""
    end = time.monotonic() + timeout
    while True:
        pic = screen(machine, dest)
        if check(pic):
            return pic
        if time.monotonic() > end:
            raise TestFailure(f"{what}: not on screen within {timeout:g} s (last screendump {dest})")
        machine.execute("sleep 0.5")  # pace the screendumps on the guest's clock (bounded)
