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


def run(tool: str, main: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """Call main(args); a broken pipe ends quietly (`ls | head`), anything else is one line."""
    try:
        return main(sys.argv[1:] if argv is None else argv)
    except Refused as e:
        sys.stderr.write(f"{tool}: {e}\n")
        return USAGE
    except BrokenPipeError:
        with_devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(with_devnull, sys.stdout.fileno())
        return FAILED
    except KeyboardInterrupt:
        return 130
