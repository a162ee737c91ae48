"""Switching between manifest generations live, with probation and automatic rollback.

`switch` validates first (a bad manifest is refused with the loader's error; nothing changes),
writes a new generation (or picks an existing one), applies the difference live, and then:
  * `--no-try` (or no previous generation): makes it `current` at once;
  * try mode (default): the generation is on probation for a window. `current` still names the
    previous generation, so a crash or power cut during the window boots the old one. If in the
    window a capsule the switch started or changed fails, crash-loops (enters backoff
    CRASH_LOOP_BACKOFFS times) or is not ready at the end, the previous generation is applied
    again and the reason recorded in the event log; otherwise it becomes `current`.
`rollback` goes back one generation (committed at once). Boot: see `boot_manifest`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from exo_init.lib import eventlog
from exo_init.lib.errors import ApiError
from exo_init.pid1.capsule import Event, State
from exo_init.pid1.config import Config
from exo_init.pid1.generations import Generation, GenerationError, GenerationStore, sha256_hex
from exo_init.pid1.log import log
from exo_init.pid1.loop import Loop, Timer
from exo_init.pid1.manifest import Manifest, ManifestError, decode, load_manifest, parse_manifest

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable, Mapping
    from typing import Any, Protocol
else:
    Protocol = object

DEFAULT_PROBATION = 20.0
MAX_PROBATION = 3600.0
CRASH_LOOP_BACKOFFS = 3


class _Capsule(Protocol):
    @property
    def state(self) -> State: ...
    consecutive_failures: int
    @property
    def failure_times(self) -> deque[float]: ...
    def satisfies_dependents(self) -> bool: ...


class Supervised(Protocol):
    """What the switcher uses of the supervisor (exo_init/pid1/supervisor.py)."""

    @property
    def config(self) -> Config: ...
    @property
    def loop(self) -> Loop: ...
    @property
    def capsules(self) -> Mapping[str, _Capsule]: ...
    @property
    def listeners(self) -> list[Callable[[Event], None]]: ...
    reload_hook: Callable[[], dict[str, list[str]]] | None
    def apply(self, manifest: Manifest) -> dict[str, list[str]]: ...


def parse_bytes(data: bytes, source: str) -> Manifest:
    """A manifest given as bytes (a file to switch to) -> Manifest, or ManifestError."""
    return parse_manifest(decode(data, source), source)


def strict(manifest: Manifest) -> Manifest:
    """A manifest to switch to must be entirely valid: the first capsule error is the refusal."""
    if manifest.errors:
        first = manifest.errors[sorted(manifest.errors)[0]]
        raise ManifestError(str(first))
    return manifest


def boot_manifest(store: GenerationStore, image: Path, requested: int | None) -> tuple[Manifest, int | None]:
    """The manifest PID 1 boots, and its generation: `exo.generation=N` if given and usable, else
    `current`, else the image's manifest. A new (or first) image manifest becomes a generation."""
    try:
        data = image.read_bytes()
        parse_bytes(data, str(image))
        gen = store.import_image(data, str(image))
        if gen is not None:
            log.info("image manifest %s imported as generation %d", image, gen.number)
    except (OSError, ManifestError) as e:
        log.warning("image manifest not imported: %s", e)
    for number, why in ((requested, "exo.generation"), (store.current(), "current")):
        if number is None:
            continue
        try:
            manifest = load_manifest(store.get(number).manifest)
            log.info("booting generation %d (%s)", number, why)
            return manifest, number
        except (GenerationError, ManifestError) as e:
            log.error("cannot boot generation %d (%s): %s", number, why, e)
    return load_manifest(image), None


@dataclass
class Probation:
    generation: int
    previous: int
    seconds: float
    watched: set[str]
    timer: Timer | None = None
    backoffs: Counter[str] = field(default_factory=Counter)
    verdict: str | None = None  # set once a failure was seen (the rollback is already scheduled)


class Switcher:
    def __init__(self, sup: Supervised, store: GenerationStore, booted: int | None, event_log: Path) -> None:
        self.sup = sup
        self.store = store
        self.booted = booted
        self.running = booted  # the generation whose manifest is applied
        self.event_log = event_log
        self.probation: Probation | None = None
        self.last_rollback: dict[str, Any] | None = None
        sup.listeners.append(self.on_event)
        sup.reload_hook = self.reload

    def record(self, **record: Any) -> dict[str, Any]:
        try:
            return eventlog.append(self.event_log, {"source": "exo_init", **record})
        except OSError as e:
            log.error("event log %s: %s", self.event_log, e)
            return record

    # --- operations ------------------------------------------------------------------------------

    def switch(self, target: str, try_mode: bool = True, probation: float = DEFAULT_PROBATION) -> dict[str, Any]:
        if not 0 <= probation <= MAX_PROBATION:
            raise ApiError("BadRequest", f"probation must be between 0 and {MAX_PROBATION:g} seconds")
        if self.probation is not None:
            raise ApiError("Busy", f"generation {self.probation.generation} is on probation; "
                              "wait for it to be committed or roll back first")
        if target.isascii() and target.isdigit() and len(target) < 10:
            try:
                gen = self.store.get(int(target))
            except GenerationError as e:
                raise ApiError("NoSuchGeneration", str(e)) from None
            manifest = strict(load_manifest(gen.manifest))
        else:
            path = Path(target)
            if not path.is_absolute():
                raise ApiError("BadRequest", f"{target}: the manifest path must be absolute")
            try:
                data = path.read_bytes()
            except OSError as e:
                raise ManifestError(f"{path}: cannot read: {e.strerror}") from None
            manifest = strict(parse_bytes(data, str(path)))
            gen = self.store.create(data, str(path))
            manifest = load_manifest(gen.manifest)
        return self._activate(gen, manifest, try_mode, probation)

    def _activate(self, gen: Generation, manifest: Manifest, try_mode: bool, probation: float) -> dict[str, Any]:
        previous = self.running
        log.info("switching to generation %d (%s)%s", gen.number, gen.source,
                 f", probation {probation:g} s" if try_mode and probation > 0 else "")
        done: dict[str, Any] = dict(self.sup.apply(manifest))
        self.running = gen.number
        on_probation = try_mode and probation > 0 and previous is not None and previous != gen.number
        if on_probation:
            assert previous is not None
            watched = {n for n in done["added"] + done["changed"] if manifest.capsules[n].autostart}
            self.probation = Probation(gen.number, previous, probation, watched)
            self.probation.timer = self.sup.loop.call_later(probation, self._probation_over)
        else:
            self.store.set_current(gen.number)
        self.record(kind="switch", generation=gen.number, previous=previous, source=gen.source,
                    probation=probation if on_probation else 0, changes={k: v for k, v in done.items() if v})
        return {"generation": gen.number, "previous": previous, "probation": probation if on_probation else 0,
                **done}

    def reload(self) -> dict[str, list[str]]:
        """`reload` / SIGHUP: re-read the image manifest and apply it as before (leniently: a capsule
        whose new definition is broken keeps running its old one); new content also becomes a new,
        committed generation, so `current` and `running` keep telling the truth."""
        path = self.sup.config.manifest
        manifest = load_manifest(path)
        log.info("reloading %s", manifest.source)
        p = self.probation
        if p is not None:  # the operator's reload supersedes the trial
            self.probation = None
            if p.timer is not None:
                p.timer.cancel()
        gen: Generation | None = None
        try:
            data = path.read_bytes()
            digest = sha256_hex(data)
            running = self.store.get(self.running).sha256 if self.running is not None else None
            if running != digest:
                gen = self.store.create(data, str(path))
        except (OSError, GenerationError) as e:
            log.error("reload: no generation recorded: %s", e)
        done: dict[str, list[str]] = self.sup.apply(manifest)
        if gen is not None:
            previous, self.running = self.running, gen.number
            try:
                self.store.set_current(gen.number)
            except (OSError, GenerationError) as e:
                log.error("reload: generation %d not made current: %s", gen.number, e)
            self.record(kind="switch", generation=gen.number, previous=previous, source=gen.source, probation=0,
                        reload=True, changes={k: v for k, v in done.items() if v})
        return done

    def rollback(self) -> dict[str, Any]:
        p = self.probation
        if p is not None:
            self._roll_back(p, "rollback requested")
            return {"generation": p.previous, "rolled_back": p.generation}
        if self.running is None:
            raise ApiError("NoSuchGeneration", "not running a generation; nothing to roll back to")
        target = self.store.previous(self.running)
        if target is None:
            raise ApiError("NoSuchGeneration", f"generation {self.running} is the oldest; nothing to roll back to")
        rolled_back = self.running
        result = self.switch(str(target), try_mode=False)
        self.record(kind="rollback", generation=rolled_back, to=target, reason="rollback requested", automatic=False)
        return {**result, "rolled_back": rolled_back}

    def listing(self) -> dict[str, Any]:
        current = self.store.current()
        p = self.probation
        return {
            "current": current,
            "booted": self.booted,
            "running": self.running,
            "probation": None if p is None else {"generation": p.generation, "previous": p.previous,
                                                 "seconds": p.seconds, "watched": sorted(p.watched)},
            "last_rollback": self.last_rollback,
            "state_dir": str(self.store.root.parent),
            "event_log": str(self.event_log),
            "generations": [{**g.to_json(), "current": g.number == current, "booted": g.number == self.booted,
                             "running": g.number == self.running} for g in self.store.list()],
        }

    def events(self, count: int) -> list[dict[str, Any]]:
        return eventlog.tail(self.event_log, count)

    # --- probation -------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        p = self.probation
        if p is None or p.verdict is not None or event.capsule not in p.watched:
            return
        if event.new is State.FAILED:
            self._failed(p, f"capsule {event.capsule} failed: {event.reason}")
        elif event.new is State.BACKOFF:
            p.backoffs[event.capsule] += 1
            if p.backoffs[event.capsule] >= CRASH_LOOP_BACKOFFS:
                self._failed(p, f"capsule {event.capsule} is crash-looping ({p.backoffs[event.capsule]} "
                             f"restarts on probation; last: {event.reason})")

    def _failed(self, p: Probation, reason: str) -> None:
        # Not from inside the supervisor's state change that told us: from the loop, next turn.
        p.verdict = reason
        self.sup.loop.call_later(0, lambda: self._roll_back(p, reason))

    def _probation_over(self) -> None:
        p = self.probation
        if p is None or p.verdict is not None:
            return
        p.timer = None
        for name in sorted(p.watched):
            rt = self.sup.capsules.get(name)
            if rt is None or not rt.satisfies_dependents():
                state = rt.state.value if rt is not None else "removed"
                self._roll_back(p, f"capsule {name} not ready within the {p.seconds:g} s probation ({state})")
                return
        self.probation = None
        self.store.set_current(p.generation)
        log.info("generation %d committed after %g s of probation", p.generation, p.seconds)
        self.record(kind="commit", generation=p.generation, probation=p.seconds)

    def _roll_back(self, p: Probation, reason: str) -> None:
        if self.probation is not p:
            return
        self.probation = None
        if p.timer is not None:
            p.timer.cancel()
        log.error("generation %d rolled back to %d: %s", p.generation, p.previous, reason)
        try:
            manifest = load_manifest(self.store.get(p.previous).manifest)
        except (GenerationError, ManifestError) as e:
            log.error("rollback to generation %d impossible: %s", p.previous, e)
            self.record(kind="rollback-failed", generation=p.generation, to=p.previous, reason=reason, error=str(e))
            return
        # Capsules that failed on probation must start afresh (their start limit is not ours).
        for name in p.watched:
            rt = self.sup.capsules.get(name)
            if rt is not None:
                rt.consecutive_failures = 0
                rt.failure_times.clear()
        self.sup.apply(manifest)
        self.running = p.previous
        self.store.set_current(p.previous)
        self.last_rollback = {"generation": p.generation, "to": p.previous, "reason": reason}
        self.record(kind="rollback", generation=p.generation, to=p.previous, reason=reason, automatic=True)
