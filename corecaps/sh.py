"""sh: the Exosphere login shell, run as a capsule on the console.

Line editing and history (readline), pipelines (`a | b`), redirections (`<`, `>`, `>>`), `;`
lists, `$?`, quoting as in POSIX sh (shlex). Commands are, in order: builtins (cd, pwd, echo,
exit, history, help), the CoreCaps (ls, cat, ps, top, and exoctl), then programs found on PATH in
the capsule's world. CoreCaps run in a forked child of the shell, not a new interpreter: they start
at once and live in the shell capsule's world, so they can do no more than its grants allow. `ls`,
`cat`, `ps` and `top` are CRUSH programs (corecaps/crush/, compiled at image build;
corecaps/crushcap.py runs them on the CRUSH VM, loaded once in the shell so a command's child
starts with it ready).
"""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from corecaps import crushcap
from corecaps.tool import exit_status, run
from exo_init.lib.errors import ApiError
from exo_init.lib.paths import CONTROL_SOCKET, DEFAULT_RUNTIME

BUILTINS = ("cd", "pwd", "echo", "exit", "history", "help")
BOOT_WAIT = 600.0  # the longest the first prompt waits for "boot complete" (then it comes anyway)
OPERATORS = ("|", "<", ">", ">>", ";")


class SyntaxProblem(Exception):
    pass


@dataclass
class Command:
    argv: list[str] = field(default_factory=list)
    stdin: str | None = None
    stdout: str | None = None
    append: bool = False


def parse(line: str) -> list[list[Command]]:
    """A line -> `;`-separated pipelines of commands. SyntaxProblem names what is wrong."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|<>;")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError as e:
        raise SyntaxProblem(str(e).lower()) from None
    lists: list[list[Command]] = [[Command()]]
    it = iter(tokens)
    for tok in it:
        cmd = lists[-1][-1]
        if tok in ("<", ">", ">>"):
            target = next(it, None)
            if target is None or target in OPERATORS:
                raise SyntaxProblem(f"missing file name after {tok}")
            if tok == "<":
                cmd.stdin = target
            else:
                cmd.stdout, cmd.append = target, tok == ">>"
        elif tok == "|":
            if not cmd.argv:
                raise SyntaxProblem("missing command before |")
            lists[-1].append(Command())
        elif tok == ";":
            if not cmd.argv and len(lists[-1]) > 1:
                raise SyntaxProblem("missing command after |")
            lists.append([Command()])
        elif set(tok) <= set("|<>;"):
            raise SyntaxProblem(f"unexpected {tok!r}")
        else:
            cmd.argv.append(tok)
    out = [p for p in lists if p[-1].argv or len(p) > 1]
    for pipeline in out:
        if not pipeline[-1].argv:
            raise SyntaxProblem("missing command after |")
    return out


class Shell:
    def __init__(self) -> None:
        self.status = 0
        self.history: list[str] = []

    # --- builtins ---------------------------------------------------------------------------------

    def builtin(self, argv: list[str]) -> int | None:
        """Run a builtin in the shell itself; None when argv[0] is not one."""
        name, args = argv[0], argv[1:]
        if name == "cd":
            target = args[0] if args else os.environ.get("HOME", "/")
            try:
                os.chdir(target)
            except OSError as e:
                sys.stderr.write(f"sh: cd: {target}: {e.strerror}\n")
                return 1
            return 0
        if name == "pwd":
            print(os.getcwd())
            return 0
        if name == "echo":
            print(" ".join(args))
            return 0
        if name == "history":
            for i, line in enumerate(self.history, 1):
                print(f"{i:>5}  {line}")
            return 0
        if name == "help":
            print("builtins: " + " ".join(BUILTINS) + "\ncorecaps: "
                  + " ".join([*crushcap.CRUSH_CORECAPS, "exoctl"])
                  + "\nsyntax:   a | b, < file, > file, >> file, a ; b, $? (last status), # comment")
            return 0
        return None

    # --- running ----------------------------------------------------------------------------------

    def _target(self, name: str) -> Callable[[list[str]], int] | str | None:
        """What runs `name`: a CoreCap's main, a program path, or None (not found)."""
        if name in crushcap.CRUSH_CORECAPS:
            return lambda args: run(name, lambda a: crushcap.run_crushcap(name, a), args)
        if name == "exoctl":
            from exo_init.client import exoctl  # noqa: PLC0415 -- loaded by warm() in an interactive shell

            def call_exoctl(args: list[str]) -> int:
                try:
                    exoctl.main(args)
                except SystemExit as e:
                    return exit_status(e)
                return 0
            return call_exoctl
        if "/" in name:
            return name
        for directory in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
            path = os.path.join(directory, name)
            if os.access(path, os.X_OK) and not os.path.isdir(path):
                return path
        return None

    def _child(self, cmd: Command, stdin: int | None, stdout: int | None, close: list[int]) -> None:
        """In the forked child: wire the fds, run the command, never return."""
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGQUIT, signal.SIG_DFL)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            if stdin is not None:
                os.dup2(stdin, 0)
            if stdout is not None:
                os.dup2(stdout, 1)
            for fd in close:
                os.close(fd)
            if cmd.stdin is not None:
                fd = os.open(cmd.stdin, os.O_RDONLY)
                os.dup2(fd, 0)
                os.close(fd)
            if cmd.stdout is not None:
                flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if cmd.append else os.O_TRUNC)
                fd = os.open(cmd.stdout, flags, 0o644)
                os.dup2(fd, 1)
                os.close(fd)
            sys.stdin = os.fdopen(0, "r", closefd=False)
            sys.stdout = os.fdopen(1, "w", closefd=False)
            builtin = self.builtin(cmd.argv)
            if builtin is not None:
                code = builtin
            else:
                target = self._target(cmd.argv[0])
                if target is None:
                    sys.stderr.write(f"sh: {cmd.argv[0]}: command not found\n")
                    code = 127
                elif isinstance(target, str):
                    os.execv(target, cmd.argv)
                else:
                    code = target(cmd.argv[1:])
        except OSError as e:
            what = e.filename or cmd.argv[0]
            sys.stderr.write(f"sh: {what}: {e.strerror}\n")
            code = 126 if isinstance(e, PermissionError) else 1
        except BaseException as e:
            sys.stderr.write(f"sh: {cmd.argv[0]}: {e}\n")
        finally:
            try:
                sys.stdout.flush()
            except OSError:
                pass
            os._exit(code & 0xFF)

    def pipeline(self, commands: list[Command]) -> int:
        for cmd in commands:
            cmd.argv = [str(self.status) if a == "$?" else a for a in cmd.argv]
        if len(commands) == 1 and commands[0].stdin is None and commands[0].stdout is None:
            cmd = commands[0]
            if cmd.argv[0] == "exit":
                raise SystemExit(int(cmd.argv[1]) if len(cmd.argv) > 1 and cmd.argv[1].isdigit() else self.status)
            if cmd.argv[0] in ("cd", "history"):
                return self.builtin(cmd.argv) or 0
        pids: list[int] = []
        prev_read: int | None = None
        for i, cmd in enumerate(commands):
            last = i == len(commands) - 1
            read_end, write_end = (None, None) if last else os.pipe()
            pid = os.fork()
            if pid == 0:
                close = [fd for fd in (read_end,) if fd is not None]
                self._child(cmd, prev_read, write_end, close)
            pids.append(pid)
            if prev_read is not None:
                os.close(prev_read)
            if write_end is not None:
                os.close(write_end)
            prev_read = read_end
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            status = 0
            for pid in pids:
                _, st = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(st)
                status = code if code >= 0 else 128 - code
            return status
        finally:
            signal.signal(signal.SIGINT, old)

    def line(self, text: str) -> None:
        try:
            pipelines = parse(text)
        except SyntaxProblem as e:
            sys.stderr.write(f"sh: syntax error: {e}\n")
            self.status = 2
            return
        for pipeline in pipelines:
            self.status = self.pipeline(pipeline)

    def prompt(self) -> str:
        cwd = os.getcwd()
        return f"{os.environ.get('EXO_CAPSULE', 'sh')}:{cwd}{'#' if os.getuid() == 0 else '$'} "

    def interact(self) -> int:
        try:
            import readline  # noqa: PLC0415 -- line editing only for an interactive session
        except ImportError:
            readline = None  # type: ignore[assignment]
        if readline is not None:
            readline.parse_and_bind("tab: complete")
            readline.parse_and_bind("set enable-bracketed-paste off")  # no escape noise on a serial line
        warm()
        wait_for_boot(DEFAULT_RUNTIME / CONTROL_SOCKET, BOOT_WAIT)
        print("Exosphere sh: type help for the commands, exit to leave.", flush=True)
        while True:
            try:
                text = input(self.prompt())
            except EOFError:
                print()
                return self.status
            except KeyboardInterrupt:
                print()
                continue
            if text.strip():
                self.history.append(text)
            try:
                self.line(text)
            except SystemExit as e:
                return int(e.code) if isinstance(e.code, int) else 0


def warm() -> None:
    """Import exoctl now, once, in the interactive shell: each command's forked child then finds it
    loaded (importing exoctl in every child was most of the time from Enter to first output under
    TCG: tests/bench/typed.py)."""
    importlib.import_module("exo_init.client.exoctl")


def wait_for_boot(control: Path, timeout: float) -> None:
    """Return once PID 1 has reported "boot complete" (its last boot status line), at most `timeout`
    seconds from now, or at once if PID 1 cannot be asked: the shell's first prompt then comes after
    the boot's status lines on the console, not among them."""
    from exo_init.client import control as api  # noqa: PLC0415 -- only an interactive session waits

    deadline = time.monotonic() + timeout
    try:
        with api.Subscription(control, timeout=10.0) as sub:  # (subscribed first: no event is missed)
            while not api.call(control, {"op": "info"}).get("boot_complete"):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                sub.events(left)
    except (OSError, ApiError, ValueError):
        return


def main(argv: list[str]) -> int:
    crushcap.warm()
    shell = Shell()
    if argv[:1] == ["-c"] and len(argv) > 1:
        try:
            shell.line(argv[1])
        except SystemExit as e:
            return int(e.code) if isinstance(e.code, int) else 0
        return shell.status
    return shell.interact()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
