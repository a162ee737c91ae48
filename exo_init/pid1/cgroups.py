"""cgroup v2: PID 1's own leaf, one leaf per capsule, quotas, kill, freeze and accounting."""

from __future__ import annotations

import dataclasses
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

from exo_init.lib.cgroupfmt import flat_keyed, psi_avg10
from exo_init.pid1.log import log
from exo_init.pid1.manifest import Quotas

KNOWN_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")
STATS_TTL = 1.0  # seconds the figures other than cpu.stat's may be old (CgroupTree.stats)
INIT_CPU_WEIGHT = 1000  # exo_init's leaf against all capsules together (/capsules: the default 100)
# The kernel's defaults of the limits a manifest can set (io.max lines are per device: each device's
# line no longer declared is set back to IO_MAX_RESET, CgroupTree._reset_io_max).
RESETS = {"cpu.max": "max", "cpu.weight": "100", "memory.max": "max", "memory.high": "max",
          "memory.swap.max": "max", "pids.max": "max", "io.weight": "default 100", "memory.oom.group": "0"}
IO_MAX_RESET = "rbps=max wbps=max riops=max wiops=max"


def _key(filename: str, value: str) -> str:
    """What one write sets: a file, or one device's line of a keyed file (`io.max`: a line per
    device, each write adding or changing one; two devices are two writes)."""
    return f"{filename} {value.split(None, 1)[0]}" if filename == "io.max" else filename


class QuotaError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"quotas.{field}: {message}")
        self.field = field


def _read(path: Path | str, dir_fd: int | None = None) -> str:
    """A small kernel file's text, "" if it cannot be read (`path` relative to `dir_fd` if given).
    open/read/close by hand: every `status` reads about a dozen of these per capsule, on PID 1's
    loop, and Path.read_text costs five times as much (its text-file object), which under TCG is
    most of a status call."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return ""
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)  # (as open(path, "w"))
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclass(frozen=True)
class CgroupStats:
    cpu_usage_usec: int = 0
    cpu_throttled_usec: int = 0
    cpu_nr_throttled: int = 0
    memory_current: int = 0
    memory_max: str = "max"
    memory_high: str = "max"
    memory_oom_kill: int = 0
    memory_events_max: int = 0
    pids_current: int = 0
    pids_max: str = "max"
    pids_events_max: int = 0
    cpu_max: str = "max"
    frozen: bool = False
    psi_cpu_avg10: float | None = None
    psi_memory_avg10: float | None = None
    psi_io_avg10: float | None = None
    populated: bool = False


class CgroupTree:
    """A subtree of cgroup2 owned by exo_init: `<root>/exo.init` and `<root>/capsules/<name>`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.capsules = root / "capsules"
        self.controllers: frozenset[str] = frozenset()
        self.written: dict[str, dict[str, str]] = {}  # capsule -> the limits this tree wrote to its leaf
        self._slow: dict[str, tuple[float, CgroupStats]] = {}  # name -> (read at, figures but cpu.stat's)

    def setup(self) -> list[str]:
        """Move this process into a leaf and enable every available controller top-down.

        Returns warnings (a controller that could not be enabled); raises OSError only if the
        tree itself cannot be made.
        """
        warnings: list[str] = []
        self.root.mkdir(exist_ok=True)
        init_leaf = self.root / "exo.init"
        init_leaf.mkdir(exist_ok=True)
        (init_leaf / "cgroup.procs").write_text(f"{os.getpid()}\n")
        self.capsules.mkdir(exist_ok=True)
        available = set(_read(self.root / "cgroup.controllers").split())
        enabled: set[str] = set()
        for ctrl in KNOWN_CONTROLLERS:
            if ctrl not in available:
                continue
            try:
                (self.root / "cgroup.subtree_control").write_text(f"+{ctrl}\n")
                (self.capsules / "cgroup.subtree_control").write_text(f"+{ctrl}\n")
                enabled.add(ctrl)
            except OSError as e:
                warnings.append(f"cgroup controller {ctrl} not enabled: {e.strerror}")
        self.controllers = frozenset(enabled)
        if "cpu" in enabled:
            # PID 1 before the capsules when both want the CPU: its work is bounded and event-driven,
            # and a capsule (or a hostile client's flood) must slow itself, not the supervisor.
            try:
                (init_leaf / "cpu.weight").write_text(f"{INIT_CPU_WEIGHT}\n")
            except OSError as e:
                warnings.append(f"cpu.weight of exo_init's own cgroup not set: {e.strerror}")
        return warnings

    def path(self, name: str) -> Path:
        return self.capsules / name

    def prepare(self, name: str, quotas: Quotas, defaults: Quotas | None = None) -> Path:
        """Create (or reuse) the capsule's leaf and write its quotas; QuotaError names the field.

        `quotas` are the declared ones: each must be honoured. `defaults` fill what is not
        declared where the controller is there (a system without it runs the capsule unlimited);
        every other limit of a reused leaf goes back to the kernel's default, so a limit removed
        from the manifest does not outlive it. Only what differs from what the leaf holds is
        written: a new leaf holds the kernel's defaults, a reused one what this tree wrote last
        (a start wrote nine files; a restart of an unconfined capsule now writes none)."""
        self._slow.pop(name, None)
        leaf = self.path(name)
        try:
            leaf.mkdir()
            holds: dict[str, str] | None = dict(RESETS)  # a new leaf: the kernel's defaults
        except FileExistsError:
            holds = self.written.get(name)  # None: made before this tree knew it, so unknown
        # what to write, by key: the file's name, or for a keyed file (io.max) the file and the device
        wanted: dict[str, tuple[str, str, str | None]] = {}  # key -> (file, value, the field that declared it)
        for field, filename, value in quotas.cgroup_files():
            ctrl = filename.split(".", 1)[0]
            if ctrl not in self.controllers:
                raise QuotaError(field, f"the {ctrl} controller is not available on this system")
            wanted[_key(filename, value)] = (filename, value, field)
        fallback = {filename: value for _, filename, value in (defaults or Quotas()).cgroup_files()}
        for filename, reset in RESETS.items():
            if filename not in wanted and filename.split(".", 1)[0] in self.controllers:
                wanted[filename] = (filename, fallback.get(filename, reset), None)
        written = dict(holds or {})
        for key, (filename, value, declared_by) in wanted.items():
            if holds is not None and holds.get(key) == value:
                continue
            try:
                _write(f"{leaf}/{filename}", value + "\n")
                written[key] = value
            except OSError as e:
                if declared_by is not None:
                    raise QuotaError(declared_by, f"the kernel rejected {filename}={value!r}: {e.strerror}") from None
                if filename in fallback:  # a default the kernel refuses is not worth failing the start for
                    log.warning("capsule %r: default %s=%s not set: %s", name, filename, value, e.strerror)
        if "io" in self.controllers:
            self._reset_io_max(name, leaf, wanted, holds, written)
        self.written[name] = written
        return leaf

    @staticmethod
    def _reset_io_max(name: str, leaf: Path, wanted: dict[str, tuple[str, str, str | None]],
                      holds: dict[str, str] | None, written: dict[str, str]) -> None:
        """io.max holds a line per device, which no write of another device's line replaces: a
        device's limits that the manifest no longer declares are set back to max (which removes
        the line). The leaf's lines are those this tree wrote, or (a leaf it did not make) read."""
        if holds is not None:
            devices = [key.split()[1] for key in holds if key.startswith("io.max ")]
        else:
            devices = [line.split()[0] for line in _read(leaf / "io.max").splitlines() if line.strip()]
        for device in devices:
            key = f"io.max {device}"
            if key in wanted:
                continue
            written.pop(key, None)
            try:
                _write(f"{leaf}/io.max", f"{device} {IO_MAX_RESET}\n")
            except OSError as e:  # (a device that is gone took its limits with it)
                log.warning("capsule %r: io.max of %s not reset: %s", name, device, e.strerror)

    def teardown(self) -> None:
        """Move this process back to the parent cgroup and remove the (emptied) tree."""
        try:
            (self.root.parent / "cgroup.procs").write_text(f"{os.getpid()}\n")
        except OSError:
            return
        for leaf in [*self.capsules.iterdir(), self.capsules, self.root / "exo.init", self.root] \
                if self.capsules.is_dir() else []:
            if leaf.is_dir():
                for _ in range(100):  # killed processes leave their cgroup asynchronously
                    try:
                        leaf.rmdir()
                        break
                    except OSError as e:
                        if e.errno != errno.EBUSY:
                            break
                        time.sleep(0.01)

    def populated(self, name: str) -> bool:
        """Whether the capsule's cgroup holds processes. Found empty, its cached figures are dropped:
        read while its processes were leaving, they would show a stopped capsule's last pids."""
        events = _read(f"{self.capsules}/{name}/cgroup.events")
        if flat_keyed(events).get("populated", 0) == 1:
            return True
        self._slow.pop(name, None)
        return False

    def pids(self, name: str) -> list[int]:
        return [int(p) for p in _read(self.path(name) / "cgroup.procs").split()]

    def kill(self, name: str) -> None:
        """SIGKILL every process in the capsule's cgroup (cgroup.kill: nothing escapes)."""
        self._slow.pop(name, None)
        leaf = self.path(name)
        try:
            (leaf / "cgroup.kill").write_text("1\n")
        except FileNotFoundError:
            return
        except OSError:
            # Kernels before 5.14 have no cgroup.kill: kill what is listed, repeatedly.
            for _ in range(10):
                pids = self.pids(name)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        pass

    def freeze(self, name: str, frozen: bool) -> None:
        self._slow.pop(name, None)
        (self.path(name) / "cgroup.freeze").write_text("1\n" if frozen else "0\n")

    def remove(self, name: str) -> None:
        self.written.pop(name, None)
        self._slow.pop(name, None)
        try:
            self.path(name).rmdir()
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EBUSY):
                raise

    def stats(self, name: str) -> CgroupStats:
        """The capsule's figures. cpu.stat is read every time (CPU usage is sampled by its change);
        the rest, a dozen files, at most once per STATS_TTL: `status` with figures runs on PID 1's
        loop (the dashboard asks for its rows' every second, any client for all), and under TCG
        reading them all took longer than PID 1 may keep a root client waiting. Nothing reads them
        unasked (no periodic sampling). What exo_init writes (freeze, kill, quotas) drops the
        capsule's cached figures."""
        leaf = self.path(name)
        cpu = flat_keyed(_read(leaf / "cpu.stat"))
        now = time.monotonic()
        cached = self._slow.get(name)
        if cached is None or now - cached[0] > STATS_TTL:
            cached = (now, self._slow_figures(leaf))
            self._slow[name] = cached
        return dataclasses.replace(cached[1], cpu_usage_usec=cpu.get("usage_usec", 0),
                                   cpu_throttled_usec=cpu.get("throttled_usec", 0),
                                   cpu_nr_throttled=cpu.get("nr_throttled", 0))

    @staticmethod
    def _slow_figures(leaf: Path) -> CgroupStats:
        try:  # (the files are read relative to the leaf: one path walk through cgroupfs, not twelve)
            dfd = os.open(leaf, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return CgroupStats()

        def read(name: str) -> str:
            return _read(name, dfd)

        try:
            mem_events = flat_keyed(read("memory.events"))
            pids_events = flat_keyed(read("pids.events"))
            events = flat_keyed(read("cgroup.events"))
            return CgroupStats(
                memory_current=int(read("memory.current").strip() or 0),
                memory_max=read("memory.max").strip() or "max",
                memory_high=read("memory.high").strip() or "max",
                memory_oom_kill=mem_events.get("oom_kill", 0),
                memory_events_max=mem_events.get("max", 0),
                pids_current=int(read("pids.current").strip() or 0),
                pids_max=read("pids.max").strip() or "max",
                pids_events_max=pids_events.get("max", 0),
                cpu_max=read("cpu.max").strip() or "max",
                frozen=events.get("frozen", 0) == 1,
                psi_cpu_avg10=psi_avg10(read("cpu.pressure")),
                psi_memory_avg10=psi_avg10(read("memory.pressure")),
                psi_io_avg10=psi_avg10(read("io.pressure")),
                populated=events.get("populated", 0) == 1,
            )
        finally:
            os.close(dfd)

    def cpu_usage(self, name: str) -> int | None:
        """The capsule's CPU time in microseconds (cpu.stat usage_usec); None without a cgroup."""
        text = _read(f"{self.capsules}/{name}/cpu.stat")
        return flat_keyed(text).get("usage_usec", 0) if text else None

    def owner_of(self, pid: int) -> str | None:
        """The capsule whose cgroup holds `pid`, from /proc/PID/cgroup."""
        text = _read(Path(f"/proc/{pid}/cgroup"))
        for line in text.splitlines():
            if line.startswith("0::"):
                rel = line[3:].strip()
                prefix = "/" + str(self.capsules.relative_to(self.mount_point())) + "/"
                if rel.startswith(prefix):
                    return rel[len(prefix):].split("/", 1)[0]
        return None

    def mount_point(self) -> Path:
        """The cgroup2 mount this tree lives in (walk up to the dir holding cgroup.controllers'
        root marker: the mount root has no cgroup.events)."""
        path = self.root
        while path.parent != path and (path.parent / "cgroup.procs").exists():
            path = path.parent
        return path


def find_cgroup2_mount() -> Path | None:
    """Where cgroup2 is mounted on this machine, if anywhere."""
    for line in _read(Path("/proc/self/mounts")).splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1])
    return None
