"""Reading JSON that may be hostile: bounded in size and nesting before it is parsed.

`load(data, max_bytes, max_depth, what)` refuses, with one `JsonError` naming `what`, input that is
too large, not UTF-8, nested deeper than `max_depth` (measured by a scan that skips strings and
never recurses, so a document nested 100,000 deep is refused before CPython's parser sees it),
not JSON, or holding NaN/Infinity (which JSON does not have).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\x02\x02")
_KEEP = b"\x01\x02"


class JsonError(ValueError):
    pass


def nesting(data: bytes) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings ignored)."""
    skeleton = _STRINGS.sub(b"", data).translate(_BRACKETS)
    steps = [1 if b == 1 else -1 for b in skeleton if b in _KEEP]
    return max(accumulate(steps), default=0)


def _no_constant(name: str) -> Any:
    raise JsonError(f"{name} is not JSON")


def load(data: bytes | str, max_bytes: int, max_depth: int, what: str) -> Any:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise JsonError(f"{what}: {len(raw)} bytes exceed the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonError(f"{what}: not UTF-8 (byte {e.start})") from None
    if nesting(raw) > max_depth:
        raise JsonError(f"{what}: nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except JsonError as e:
        raise JsonError(f"{what}: {e}") from None
    except (ValueError, RecursionError) as e:
        raise JsonError(f"{what}: not valid JSON ({str(e)[:200]})") from None


def dump(value: Any) -> str:
    """Compact, deterministic JSON (key order as given, no NaN)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
