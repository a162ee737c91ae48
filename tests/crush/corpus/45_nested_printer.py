# Pretty-printing nested lists and dicts recursively, and repr of nested values.

config = {
    "name": "exo",
    "version": [1, 2, 3],
    "features": {"gas": True, "arena": {"bytes": 16 * 1024 * 1024, "cells": None}, "caps": ["fs.read", "log"]},
    "weights": [0.5, 0.25, [1, [2, [3, []]]]],
    "empty": {},
}


def pretty(value, indent=0):
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = ["{"]
        for key in sorted(value):
            lines.append(f"{pad}  {key!r}: {pretty(value[key], indent + 1)},")
        lines.append(pad + "}")
        return "\n".join(lines)
    if isinstance(value, list):
        if all([not isinstance(v, (list, dict)) for v in value]):
            return repr(value)
        return "[" + ", ".join([pretty(v, indent) for v in value]) + "]"
    return repr(value)


print(pretty(config))
print(config)
print(repr([1, "two", 3.0, None, True, (4, 5), {"k": [6]}]))
print(str((1,)), str(()), [[]], {1: {2: {}}})
