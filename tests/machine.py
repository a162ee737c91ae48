"""A booted Exosphere VM for tests, modelled on the NixOS test driver.

- the serial console is read by pexpect on a background thread (logged with the machine's name
  as prefix, kept whole for `wait_for_console_text` and saved on failure);
- commands go over a separate virtio-serial channel to the guest agent capsule;
- QMP drives the VM itself (screendump, system_powerdown, quit).

Every wait takes a finite timeout and, on the last try, says what it saw. `HarnessError` means
the harness or VM broke (not the system under test); `TestFailure` means an assertion about the
guest failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect

from qemu.vm import VMConfig, qemu_argv


class HarnessError(Exception):
    """The VM or the harness failed (not an assertion about the system under test)."""


class TestFailure(AssertionError):
    """The guest did not behave as the test expected."""


class QMP:
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(10.0)
                self.sock.connect(str(path))
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise HarnessError(f"QMP socket {path} did not come up: {e}") from None
                time.sleep(0.1)
        self.file = self.sock.makefile("rwb")
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while True:
            line = self.file.readline()
            if not line:
                raise HarnessError("QMP connection closed")
            msg: dict[str, Any] = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command: str, **arguments: Any) -> Any:
        req: dict[str, Any] = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.file.write(json.dumps(req).encode() + b"\n")
        self.file.flush()
        reply = self._read()
        if "error" in reply:
            raise HarnessError(f"QMP {command}: {reply['error']}")
        return reply.get("return")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class CommandResult:
    rc: int
    out: str


class Machine:
    def __init__(self, name: str, vm: VMConfig, workdir: Path, global_timeout: float = 1800.0,
                 echo: bool = True) -> None:
        self.name = name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.qmp_path = workdir / "qmp.sock"
        self.agent_path = workdir / "agent.sock"
        self.vm = VMConfig(**{**vm.__dict__, "qmp_socket": self.qmp_path, "agent_socket": self.agent_path,
                              "serial": "stdio"})
        self.serial_log = workdir / "serial.log"
        self.global_timeout = global_timeout
        self.deadline = time.monotonic() + global_timeout
        self.echo = echo
        self.console = ""
        self._cond = threading.Condition()
        self._proc: pexpect.spawn | None = None
        self._reader: threading.Thread | None = None
        self._qmp: QMP | None = None
        self._agent: socket.socket | None = None
        self._agent_buf = b""
        self._next_id = 0
        self.started_at = 0.0
        self.exit_status: int | None = None

    # --- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        for path in (self.qmp_path, self.agent_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        argv = qemu_argv(self.vm)
        self.log(f"starting: {' '.join(argv)}")
        self.started_at = time.monotonic()
        self._proc = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", codec_errors="replace",
                                   timeout=None, echo=False, dimensions=(50, 200))
        self._serial_fh = open(self.serial_log, "w", encoding="utf-8")  # noqa: SIM115
        self._reader = threading.Thread(target=self._read_serial, name=f"{self.name}-serial", daemon=True)
        self._reader.start()
        self._qmp = QMP(self.qmp_path)

    def _read_serial(self) -> None:
        assert self._proc is not None
        partial = ""
        while True:
            try:
                chunk = self._proc.read_nonblocking(4096, timeout=0.5)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                break
            chunk = chunk.replace("\r", "")
            with self._cond:
                self.console += chunk
                self._cond.notify_all()
            self._serial_fh.write(chunk)
            self._serial_fh.flush()
            if self.echo:
                partial += chunk
                *lines, partial = partial.split("\n")
                for line in lines:
                    sys.stderr.write(f"{self.name} # {line}\n")
        with self._cond:
            self._cond.notify_all()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.isalive()

    def log(self, message: str) -> None:
        sys.stderr.write(f"[{self.name}] {message}\n")

    def renew_deadline(self) -> None:
        """Start a new global-timeout budget (a machine shared by several tests gets one per test)."""
        self.deadline = time.monotonic() + self.global_timeout

    def _remaining(self, timeout: float) -> float:
        left = self.deadline - time.monotonic()
        if left < timeout:
            raise HarnessError(f"{self.name}: a {timeout:g} s wait does not fit in the {left:.0f} s left of the "
                               f"machine's global timeout ({self.global_timeout:g} s)")
        return timeout

    # --- console ----------------------------------------------------------------------------------

    def wait_for_console_text(self, regex: str, timeout: float, start: int = 0) -> re.Match[str]:
        """Wait until the serial console (from offset `start`) matches `regex`."""
        pattern = re.compile(regex, re.MULTILINE)
        end = time.monotonic() + self._remaining(timeout)
        with self._cond:
            while True:
                m = pattern.search(self.console, start)
                if m:
                    return m
                if not self.is_running() and (self._reader is None or not self._reader.is_alive()):
                    raise TestFailure(f"{self.name}: VM exited before console showed /{regex}/; "
                                      f"last lines:\n{self.console_tail()}")
                left = end - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"{self.name}: console did not show /{regex}/ within {timeout:g} s; "
                                      f"last lines:\n{self.console_tail()}")
                self._cond.wait(min(left, 0.5))

    def send_console(self, text: str) -> int:
        """Type `text` on the serial console; returns the console offset before it (for waits)."""
        assert self._proc is not None
        with self._cond:
            start = len(self.console)
        self._proc.send(text)
        return start

    def console_tail(self, lines: int = 25) -> str:
        return "\n".join(self.console.splitlines()[-lines:])

    # --- agent commands ---------------------------------------------------------------------------

    def _connect_agent(self, timeout: float) -> socket.socket:
        if self._agent is not None:
            return self._agent
        end = time.monotonic() + timeout
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.agent_path))
                self._agent = sock
                return sock
            except OSError as e:
                sock.close()
                if time.monotonic() > end:
                    raise HarnessError(f"{self.name}: agent channel {self.agent_path} not available: {e}") from None
                time.sleep(0.1)

    def execute(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        """Run a shell command in the guest (via the agent capsule); returns rc and output."""
        timeout = self._remaining(timeout)
        sock = self._connect_agent(timeout)
        self._next_id += 1
        req_id = self._next_id
        sock.sendall(json.dumps({"id": req_id, "cmd": cmd, "timeout": timeout}).encode() + b"\n")
        end = time.monotonic() + timeout + 10.0
        while True:
            while b"\n" in self._agent_buf:
                line, self._agent_buf = self._agent_buf.split(b"\n", 1)
                reply = json.loads(line)
                if reply.get("id") == req_id:
                    return CommandResult(int(reply["rc"]), str(reply["out"]))
            left = end - time.monotonic()
            if left <= 0:
                raise HarnessError(f"{self.name}: agent did not answer {cmd!r} within {timeout + 10:g} s "
                                   f"(is the agent capsule running?); console:\n{self.console_tail()}")
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                self._agent = None
                raise HarnessError(f"{self.name}: agent channel closed while running {cmd!r}")
            self._agent_buf += data

    def succeed(self, cmd: str, timeout: float = 60.0) -> str:
        r = self.execute(cmd, timeout)
        if r.rc != 0:
            raise TestFailure(f"{self.name}: command failed (exit {r.rc}): {cmd}\n{r.out}")
        return r.out

    def fail(self, cmd: str, timeout: float = 60.0) -> str:
        r = self.execute(cmd, timeout)
        if r.rc == 0:
            raise TestFailure(f"{self.name}: command unexpectedly succeeded: {cmd}\n{r.out}")
        return r.out

    def wait_until(self, what: str, check: Callable[[], tuple[bool, str]], timeout: float,
                   interval: float = 0.5) -> str:
        """Poll `check` (-> (done, what it saw)) until done; on timeout report the last sight."""
        end = time.monotonic() + self._remaining(timeout)
        seen = ""
        while True:
            done, seen = check()
            if done:
                return seen
            if time.monotonic() > end:
                raise TestFailure(f"{self.name}: {what} not reached within {timeout:g} s; last try saw:\n{seen}")
            time.sleep(interval)

    def wait_until_succeeds(self, cmd: str, timeout: float = 60.0) -> str:
        def check() -> tuple[bool, str]:
            r = self.execute(cmd, timeout=min(30.0, timeout))
            return r.rc == 0, f"exit {r.rc}: {r.out.strip()}"

        return self.wait_until(f"`{cmd}` succeeding", check, timeout).split(": ", 1)[1]

    def capsule_status(self, name: str) -> dict[str, Any]:
        r = self.execute(f"exoctl --json status {name}")
        if r.rc not in (0, 3):
            raise TestFailure(f"{self.name}: exoctl status {name} failed (exit {r.rc}): {r.out}")
        result: dict[str, Any] = json.loads(r.out)
        return result

    def wait_for_capsule(self, name: str, state: str, timeout: float = 60.0) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def check() -> tuple[bool, str]:
            nonlocal last
            last = self.capsule_status(name)
            return last.get("state") == state, json.dumps(last, indent=1)[:2000]

        self.wait_until(f"capsule {name} in state {state}", check, timeout)
        return last

    def wait_for_file(self, path: str, timeout: float = 60.0) -> None:
        self.wait_until_succeeds(f"test -e {path}", timeout)

    # --- VM control -------------------------------------------------------------------------------

    @property
    def qmp(self) -> QMP:
        if self._qmp is None:
            raise HarnessError(f"{self.name}: not started")
        return self._qmp

    def screendump(self, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.workdir / f"screendump-{time.monotonic_ns()}.png"
        self.qmp.execute("screendump", filename=str(tmp), format="png")
        shutil.move(tmp, dest)
        return dest

    def send_powerdown(self) -> None:
        self.qmp.execute("system_powerdown")

    def wait_for_exit(self, timeout: float) -> int:
        """Wait for QEMU to exit by itself; returns its exit status."""
        assert self._proc is not None
        end = time.monotonic() + self._remaining(timeout)
        while self._proc.isalive():
            if time.monotonic() > end:
                raise TestFailure(f"{self.name}: VM still running {timeout:g} s later; console:\n"
                                  f"{self.console_tail()}")
            time.sleep(0.2)
        self._proc.close()
        self.exit_status = self._proc.exitstatus if self._proc.exitstatus is not None else -1
        if self._reader is not None:
            self._reader.join(5.0)
        return self.exit_status

    def crash(self) -> None:
        """Kill QEMU like a power cut."""
        if self._proc is not None and self._proc.isalive():
            self._proc.kill(9)
            self._proc.wait()
        if self._reader is not None:
            self._reader.join(5.0)

    def stop(self) -> None:
        if self._agent is not None:
            self._agent.close()
            self._agent = None
        if self._qmp is not None:
            if self.is_running():
                with contextlib.suppress(HarnessError, OSError):
                    self.qmp.execute("quit")
            self._qmp.close()
            self._qmp = None
        if self._proc is not None and self._proc.isalive():
            deadline = time.monotonic() + 10
            while self._proc.isalive() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.crash()
        if self._reader is not None:
            self._reader.join(5.0)
        if hasattr(self, "_serial_fh"):
            self._serial_fh.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[Machine]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def boot_times(console: str) -> dict[str, float]:
    """Figures from the guest's own 'boot complete' line."""
    m = re.search(r"boot complete: .*?([0-9.]+) s since exo_init start, ([0-9.]+) s since kernel start", console)
    if not m:
        return {}
    return {"since_init": float(m.group(1)), "since_kernel": float(m.group(2))}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")
