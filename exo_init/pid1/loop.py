"""A small single-threaded event loop: fd readiness (selectors) plus a timer heap.

PID 1 runs everything on this loop: signals arrive as bytes on a wakeup fd, children are reaped
in one place, and nothing ever blocks without a deadline.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Callback = Callable[[], None]


@dataclass(order=True)
class Timer:
    deadline: float
    seq: int
    callback: Callback = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.selector = selectors.DefaultSelector()
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._clock = clock
        self.turns = 0  # loop turns begun: work bounded per turn counts by it (Supervisor.schedule)

    def now(self) -> float:
        return self._clock()

    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(self.now() + max(0.0, delay), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._register(fd, selectors.EVENT_READ, callback)

    def add_writer(self, fd: int, callback: Callback) -> None:
        self._register(fd, selectors.EVENT_WRITE, callback)

    def _register(self, fd: int, events: int, callback: Callback) -> None:
        try:
            key = self.selector.get_key(fd)
        except KeyError:
            self.selector.register(fd, events, {events: callback})
            return
        callbacks = dict(key.data)
        callbacks[events] = callback
        self.selector.modify(fd, key.events | events, callbacks)

    def remove_reader(self, fd: int) -> None:
        self._unregister(fd, selectors.EVENT_READ)

    def remove_writer(self, fd: int) -> None:
        self._unregister(fd, selectors.EVENT_WRITE)

    def _unregister(self, fd: int, events: int) -> None:
        try:
            key = self.selector.get_key(fd)
        except (KeyError, ValueError):
            return
        remaining = key.events & ~events
        callbacks = {k: v for k, v in key.data.items() if k != events}
        if remaining:
            self.selector.modify(fd, remaining, callbacks)
        else:
            self.selector.unregister(fd)

    def run_once(self, max_wait: float = 1.0) -> None:
        """Wait for at most `max_wait` seconds (less if a timer is due), then run what is ready."""
        self.turns += 1
        wait = max_wait
        deadline = self.next_deadline()
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - self.now()))
        for key, mask in self.selector.select(wait):
            for event in (selectors.EVENT_READ, selectors.EVENT_WRITE):
                callback = key.data.get(event)
                if mask & event and callback is not None:
                    callback()
        self.run_timers(self.now())

    def run_timers(self, now: float) -> None:
        """Run every timer due at `now`, in deadline order. A timer set by one of them waits for the
        next turn, even one due at once: work cut into zero-delay steps lets the loop poll between."""
        due = []
        while self._timers and self._timers[0].deadline <= now:
            due.append(heapq.heappop(self._timers))
        for timer in due:
            if not timer.cancelled:
                timer.callback()

    def next_deadline(self) -> float | None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].deadline if self._timers else None
