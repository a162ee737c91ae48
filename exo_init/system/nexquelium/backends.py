"""Where frames go: the Linux framebuffer (/dev/fb0) or PNG files (offscreen, for hosts without a
display and for tests). A frame is a `Canvas`: 32-bit pixels, bytes B, G, R, X (XRGB8888 on a
little-endian machine, which is also what cairo's ARGB32 and the fbdev emulation of DRM use)."""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

FBIOGET_VSCREENINFO = 0x4600
FBIOGET_FSCREENINFO = 0x4602
BACKGROUND = (0x20, 0x1A, 0x16)  # B, G, R: the desktop colour where no surface is


class BackendError(Exception):
    """The output cannot be used (no framebuffer, unsupported depth, ...)."""


@dataclass
class Canvas:
    width: int
    height: int
    pixels: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        if not self.pixels:
            self.pixels = bytearray(bytes((*BACKGROUND, 0xFF)) * (self.width * self.height))

    @property
    def stride(self) -> int:
        return self.width * 4

    def clear(self) -> None:
        self.pixels[:] = bytes((*BACKGROUND, 0xFF)) * (self.width * self.height)

    def blit(self, data: bytes, width: int, height: int, stride: int, *, x: int = 0, y: int = 0,
             clip: tuple[int, int] | None = None) -> None:
        """Copy a client buffer (rows of `stride` bytes) to (x, y), clipped to the canvas and to
        `clip` (the width and height of the area it may cover)."""
        w = min(width, self.width - x, clip[0] if clip else width)
        h = min(height, self.height - y, clip[1] if clip else height)
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            return
        row = w * 4
        if x == 0 and w == self.width and stride == row:
            self.pixels[y * row:(y + h) * row] = data[:h * row]
            return
        for r in range(h):
            dst = (y + r) * self.stride + x * 4
            self.pixels[dst:dst + row] = data[r * stride:r * stride + row]

    def fill(self, x: int, y: int, w: int, h: int, colour: tuple[int, int, int]) -> None:
        """A rectangle of `colour` (R, G, B), clipped to the canvas."""
        x0, y0, x1, y1 = max(0, x), max(0, y), min(self.width, x + w), min(self.height, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        row = bytes((colour[2], colour[1], colour[0], 0xFF)) * (x1 - x0)
        for r in range(y0, y1):
            self.pixels[(r * self.width + x0) * 4:(r * self.width + x1) * 4] = row

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """(R, G, B) at (x, y)."""
        i = (y * self.width + x) * 4
        b, g, r = self.pixels[i:i + 3]
        return r, g, b


def encode_png(canvas: Canvas) -> bytes:
    """An RGB PNG of the canvas (filter 0 on every row; zlib level 1: it is written every frame)."""
    w, h = canvas.width, canvas.height
    rgb = bytearray(w * h * 3)
    src = canvas.pixels
    rgb[0::3] = src[2::4]
    rgb[1::3] = src[1::4]
    rgb[2::3] = src[0::4]
    raw = b"".join(b"\x00" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


class Backend(Protocol):
    name: str
    width: int
    height: int

    def present(self, canvas: Canvas) -> None: ...

    def close(self) -> None: ...


class Offscreen:
    """Each presented frame is written (atomically: temporary file + rename) to `path`."""

    name = "offscreen"

    def __init__(self, path: Path, width: int = 800, height: int = 600) -> None:
        self.path = path
        self.width = width
        self.height = height
        self.frames = 0

    def present(self, canvas: Canvas) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_bytes(encode_png(canvas))
        tmp.replace(self.path)
        self.frames += 1

    def close(self) -> None:
        pass


class Fbdev:
    """The Linux framebuffer device (fbdev, or DRM's fbdev emulation: bochs-drm, virtio-gpu)."""

    name = "fbdev"

    def __init__(self, device: Path = Path("/dev/fb0")) -> None:
        self.device = device
        try:
            self.fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise BackendError(f"{device}: {e.strerror}") from None
        try:
            var = fcntl.ioctl(self.fd, FBIOGET_VSCREENINFO, bytes(160))
            fix = fcntl.ioctl(self.fd, FBIOGET_FSCREENINFO, bytes(80))
            xres, yres, _xv, _yv, _xo, _yo, bpp = struct.unpack_from("7I", var)
            # struct fb_fix_screeninfo: id[16], smem_start (unsigned long), smem_len, type,
            # type_aux, visual, xpanstep, ypanstep, ywrapstep (u32, u16 x3), line_length
            smem_len = struct.unpack_from("I", fix, 24)[0]
            line_length = struct.unpack_from("I", fix, 48)[0]
            if bpp != 32:
                raise BackendError(f"{device}: {bpp} bits per pixel (only 32 is supported)")
            self.width, self.height, self.line_length = xres, yres, line_length
            self.map = mmap.mmap(self.fd, min(smem_len, line_length * yres) or line_length * yres,
                                 mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BackendError:
            os.close(self.fd)
            raise
        except OSError as e:
            os.close(self.fd)
            raise BackendError(f"{device}: {e.strerror or e}") from None

    def present(self, canvas: Canvas) -> None:
        row = min(canvas.width, self.width) * 4
        if self.line_length == canvas.stride and canvas.width == self.width:
            n = min(canvas.height, self.height) * row
            self.map[:n] = canvas.pixels[:n]
            return
        for y in range(min(canvas.height, self.height)):
            self.map[y * self.line_length:y * self.line_length + row] = canvas.pixels[y * canvas.stride:
                                                                                       y * canvas.stride + row]

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)
