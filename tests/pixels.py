"""Read PNG files (the compositor's offscreen frames, QMP screendumps) with pycairo's decoder.

pycairo is Debian's python3-cairo, for the system interpreter (the image's and setup-host's), so
the decoding runs there and the pixels come back as raw bytes."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
