"""What every CoreCap shares: one clear error line per failure, exit codes, no tracebacks."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

OK, FAILED, USAGE = 0, 1, 2


class Refused(Exception):
    """A user error: the message is printed as `tool: message`."""


def report(tool: str, what: str, err: OSError) -> None:
    sys.stderr.write(f"{tool}: {what}: {err.strerror or err}\n")


def exit_status(e: SystemExit) -> int:
    """The exit status a SystemExit stands for (sys.exit(None) is 0, sys.exit("text") is 1)."""
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


def run(tool: str, main: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """Call main(args); a broken pipe ends quietly (`ls | head`), anything else is one line.
    argparse's own exits (its usage errors, 2, even with exit_on_error=False; -h, 0) are statuses:
    the shell runs a CoreCap in its forked child, where a SystemExit would not be one."""
    try:
        return main(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return exit_status(e)
    except Refused as e:
        sys.stderr.write(f"{tool}: {e}\n")
        return USAGE
    except BrokenPipeError:
        with_devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(with_devnull, sys.stdout.fileno())
        return FAILED
    except KeyboardInterrupt:
        return 130
