"""PID 1 as a zygote: an unconfined Python capsule runs in the forked child, without an exec.

Every capsule's child is a fork of PID 1, which is a Python interpreter with much of the standard
library imported. For a capsule whose program is `python3 [-I -S -u ...] -m MODULE | SCRIPT | -c
CODE` on PID 1's own interpreter, the child runs that program in place of exec'ing a new
interpreter: under TCG, the interpreter's start and its first imports were most of a Python
capsule's start (and of the boot, which starts several at once). The plan decides (plan.py
`python_run`, pure); this module is the child's side, after spawn.py has put it in its cgroup,
session, stdio, fds, ids and working directory.

Only for capsules that could read PID 1's memory anyway: unconfined (`capabilities.host`) and
running as root. A scoped capsule, or one with another user, execs as before: PID 1's memory
(other capsules' definitions, log lines) must not be in its world.

What a fresh interpreter would have that a fork of PID 1 does not is set up here: argv, sys.path
(the program's directory or the working directory, PYTHONPATH, then the interpreter's), the
environment, the default signal dispositions (SIGINT raises KeyboardInterrupt, SIGPIPE and SIGXFSZ
ignored), new standard streams (stdout block-buffered on a pipe, stderr line-buffered; -u or
PYTHONUNBUFFERED: unbuffered), the process's name and command line (`ps` shows the capsule's argv;
best effort: it needs CAP_SYS_RESOURCE), and exit the way the interpreter exits (atexit,
non-daemon threads, flushed streams; the traceback and status 1 for an uncaught exception; a
SystemExit's code). PID 1's own objects stay in the child's memory untouched: PID 1's fds were
closed by spawn.py, its objects are frozen out of the garbage collector, and its stack is never
unwound (the child leaves with os._exit).
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    import io
    from typing import NoReturn

PR_SET_NAME = 15
PR_SET_MM, PR_SET_MM_ARG_START, PR_SET_MM_ARG_END = 35, 8, 9


@dataclass(frozen=True)
class PythonRun:
    """A Python program to run in the forked child (plan.python_run decides it)."""

    kind: str                      # "module" (-m), "script" (a path) or "code" (-c)
    target: str                    # the module name, the script's path or the code
    argv: tuple[str, ...]          # sys.argv as the program sees it (argv[0] as the interpreter sets it)
    path: tuple[str, ...]          # sys.path entries before the interpreter's own
    unbuffered: bool = False       # -u / PYTHONUNBUFFERED
    dont_write_bytecode: bool = False  # -B / PYTHONDONTWRITEBYTECODE


def _stream(fd: int, write: bool, unbuffered: bool) -> io.TextIOWrapper:
    import io  # noqa: PLC0415 (this module's imports are the child's: PID 1 does not carry them)

    raw = io.FileIO(fd, "w" if write else "r", closefd=False)
    buffered: io.RawIOBase | io.BufferedIOBase = raw if write and unbuffered else (
        io.BufferedWriter(raw) if write else io.BufferedReader(raw))
    return io.TextIOWrapper(buffered, encoding="utf-8", errors="backslashreplace" if fd == 2 else "strict",  # type: ignore[arg-type]
                            line_buffering=fd == 2 or os.isatty(fd), write_through=write and unbuffered)


def _rename(argv: list[str]) -> None:
    """`ps` shows the program's argv, not PID 1's (best effort: needs CAP_SYS_RESOURCE)."""
    import ctypes  # noqa: PLC0415

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, os.path.basename(argv[0]).encode()[:15], 0, 0, 0)
    data = b"\0".join(a.encode(errors="surrogateescape") for a in argv) + b"\0"
    buf = ctypes.create_string_buffer(data, len(data))
    _rename.keep = buf  # type: ignore[attr-defined]  # (the kernel reads it for as long as we live)
    start = ctypes.addressof(buf)
    for option, value in ((PR_SET_MM_ARG_END, start + len(data)), (PR_SET_MM_ARG_START, start),
                          (PR_SET_MM_ARG_END, start + len(data))):
        libc.prctl(PR_SET_MM, option, ctypes.c_ulong(value), 0, 0)


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    sys.stderr.write(f"{e.code}\n")
    return 1


def run(program: PythonRun, argv: tuple[str, ...], env: dict[str, str], err_w: int) -> NoReturn:
    """Become the program (never returns). Closing `err_w` is this path's "the exec succeeded"."""
    import atexit  # noqa: PLC0415 (the child's imports: PID 1 does not carry them)
    import gc  # noqa: PLC0415
    import runpy  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import traceback  # noqa: PLC0415
    import types  # noqa: PLC0415

    gc.freeze()  # PID 1's objects: never collected, never traversed (no copy-on-write for nothing)
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_IGN)
    sys.stdin, sys.stdout, sys.stderr = (_stream(0, False, False), _stream(1, True, program.unbuffered),
                                         _stream(2, True, program.unbuffered))
    sys.argv = list(program.argv)
    sys.path[:] = list(dict.fromkeys([*program.path, *sys.path]))
    sys.dont_write_bytecode = program.dont_write_bytecode
    atexit._clear()  # (PID 1's own: none but the standard library's; PID 1 does not use `logging`)
    try:
        _rename(list(argv))
    except (OSError, AttributeError):
        pass
    os.close(err_w)
    code = 0
    try:
        if program.kind == "module":
            runpy.run_module(program.target, run_name="__main__", alter_sys=True)
        elif program.kind == "script":
            runpy.run_path(program.target, run_name="__main__")
        else:
            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(program.target, "<string>", "exec"), main.__dict__)  # noqa: S102 (python3 -c: the capsule's code)
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # (non-daemon threads, as the interpreter waits)
        atexit._run_exitfuncs()
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
