"""wl_shm in Python: libwayland's wl_shm_buffer_* is not in pywayland's bindings, so the pool's fd
is mmapped here and a buffer is a window (offset, size, stride, format) into that mapping."""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

# wl_shm.format values the compositor takes (both are 32-bit little-endian B, G, R, A/X bytes).
ARGB8888 = 0
XRGB8888 = 1
FORMATS = (ARGB8888, XRGB8888)


class ShmError(Exception):
    """A client asked for something impossible (the compositor posts a protocol error)."""


class Pool:
    """A client's shared memory: the fd from wl_shm.create_pool, mapped read-only."""

    def __init__(self, fd: int, size: int) -> None:
        if size <= 0:
            os.close(fd)
            raise ShmError(f"invalid pool size {size}")
        try:
            self.map: mmap.mmap | None = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError) as e:
            raise ShmError(f"cannot mmap the pool: {e}") from None
        finally:
            self.fd = os.dup(fd)  # kept for resize (the client may grow the pool)
            os.close(fd)
        self.size = size
        self.buffers = 0  # live buffers; the mapping goes when the pool and its buffers are gone
        self.destroyed = False

    def resize(self, size: int) -> None:
        if size < self.size:
            raise ShmError(f"a pool cannot shrink ({self.size} -> {size})")
        old = self.map
        try:
            self.map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError) as e:
            raise ShmError(f"cannot remap the pool: {e}") from None
        self.size = size
        if old is not None:
            old.close()

    def release(self) -> None:
        if self.destroyed and self.buffers == 0 and self.map is not None:
            self.map.close()
            self.map = None
            os.close(self.fd)


@dataclass
class Buffer:
    pool: Pool
    offset: int
    width: int
    height: int
    stride: int
    format: int

    def check(self) -> None:
        if self.format not in FORMATS:
            raise ShmError(f"unsupported format {self.format}")
        if self.width <= 0 or self.height <= 0 or self.stride < self.width * 4:
            raise ShmError(f"invalid buffer {self.width}x{self.height} stride {self.stride}")
        if self.offset < 0 or self.offset + self.stride * self.height > self.pool.size:
            raise ShmError("buffer outside its pool")

    def rows(self) -> bytes:
        """A copy of the buffer's bytes (height rows of `stride` bytes), taken at commit."""
        if self.pool.map is None:
            raise ShmError("pool is gone")
        return self.pool.map[self.offset:self.offset + self.stride * self.height]
