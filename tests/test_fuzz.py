"""The manifest loader, fuzzed (issue 13 #4): for any JSON document, and for any bytes in a
manifest file, `parse_manifest` / `load_manifest` return a Manifest or raise ManifestError, and
nothing else (no ValueError, OverflowError, RecursionError, TypeError, ... that would reach PID 1's
boot). Documents are drawn three ways: any JSON value; a manifest whose capsules hold the schema's
own fields with any JSON values; the same with values near each field's meaning (the schema's
defaults, examples, enum values and bounds, and their neighbours)."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exo_init.pid1.manifest import Manifest, ManifestError, decode, load_manifest, parse_manifest
from exo_init.pid1.manifest_schema import SCHEMA, FieldSpec

SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
           | st.sampled_from(["", "\0", "max", "/", "/bin/true", "64M", "20%", "SIGTERM", "ro", "rw", "-1",
                              "9" * 5000, "cpu.max", "\x1b[31m", "../..", "/dev/../etc"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


def near(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Values near what the field means."""
    options: list[Any] = [spec.default, spec.example, *spec.values]
    if spec.bounds is not None:
        lo, hi = spec.bounds.min, spec.bounds.max
        options += [lo, hi, lo - 1, hi + 1, hi * 10 ** 10, -hi, float(hi) + 0.5, str(hi), math.inf, math.nan]
    return st.sampled_from(options) | values


def section(name: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = SCHEMA.section(name).fields
    return st.fixed_dictionaries({}, optional={
        f.name: (section(f.name) if f.name in SCHEMA.sections and f.type.value == "section" else near(f))
        for f in fields
    }) | st.dictionaries(st.sampled_from([f.name for f in fields] + ["bogus"]), values, max_size=5)


capsules = st.dictionaries(st.text(max_size=8) | st.sampled_from(["web", "db", "cpu.max", "a" * 65]),
                           section("capsule"), max_size=4)
manifests = st.fixed_dictionaries({"version": st.sampled_from([1, 1, 2, "1", None]), "capsules": capsules},
                                  optional={"hostname": st.text(max_size=10) | st.just("exosphere")})


def loads_or_refuses(doc: Any) -> None:
    try:
        result = parse_manifest(doc, "fuzz")
    except ManifestError:
        return
    assert isinstance(result, Manifest)
    for error in result.errors.values():
        assert str(error).startswith("capsule ")  # one line naming the capsule and the field
        assert "\n" not in str(error)


@SETTINGS
@given(values)
def test_any_json_value(doc: Any) -> None:
    loads_or_refuses(doc)


@SETTINGS
@given(st.fixed_dictionaries({"version": st.just(1), "capsules": st.dictionaries(st.text(max_size=5), values)}))
def test_any_capsule_values(doc: Any) -> None:
    loads_or_refuses(doc)


@SETTINGS
@given(manifests)
def test_manifests_near_the_schema(doc: Any) -> None:
    loads_or_refuses(doc)
    # and the same document through the file loader (JSON numbers as the loader reads them)
    try:
        text = json.dumps(doc, allow_nan=True)
    except ValueError:  # an int too long for str()
        return
    bytes_or_refused(text.encode())


def bytes_or_refused(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.json"
        path.write_bytes(data)
        try:
            assert isinstance(load_manifest(path), Manifest)
        except ManifestError as e:
            assert "\n" not in str(e) and str(path) in str(e)


@SETTINGS
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes(data: bytes) -> None:
    bytes_or_refused(data)


def test_the_issues_values_are_refused_with_one_clear_error(tmp_path: Path) -> None:
    """JSON nested 50,000 deep, and each bad value of the issue in one capsule of an otherwise good
    manifest: the document or that capsule is refused, naming what is wrong."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50000 + "]" * 50000)
    try:
        load_manifest(deep)
        raise AssertionError("a 50,000-deep document loaded")
    except ManifestError as e:
        assert str(e) == f"{deep}: not valid JSON: nested too deeply"
    try:
        decode(b'{"version": 1, "capsules": ' + b"[" * 50000 + b"]" * 50000 + b"}", "x")
        raise AssertionError("decoded")
    except ManifestError as e:
        assert "nested too deeply" in str(e)
    bad: dict[str, tuple[dict[str, Any], str, str]] = {
        "huge": ({"quotas": {"memory_max": int("9" * 4300)}}, "quotas.memory_max", "must be between 0 and"),
        "hugestr": ({"quotas": {"memory_max": "9" * 4301}}, "quotas.memory_max", "must be at most"),
        "wd": ({"watchdog_sec": math.inf}, "watchdog_sec", "must be between 0 and 86400, got inf"),
        "nul-argv": ({"argv": ["/bin/sh", "-c", "echo\0x"]}, "argv[2]", "contains a NUL byte"),
        "nul-env": ({"env": {"A": "b\0c"}}, "env.A", "contains a NUL byte"),
        "nul-envkey": ({"env": {"A\0B": "c"}}, "env.A\\x00B", "not a valid variable name"),
        "nul-user": ({"user": "ro\0ot"}, "user", "contains a NUL byte"),
        "nul-workdir": ({"workdir": "/tmp\0/x"}, "workdir", "contains a NUL byte"),
        "nul-grant": ({"capabilities": {"filesystem": {"/etc\0x": "ro"}}}, "capabilities.filesystem./etc\\x00x",
                      "contains a NUL byte"),
        "dep": ({"after": ["cgroup.procs"]}, "after[0]", "is not a valid capsule name"),
    }
    capsules: dict[str, Any] = {"ok": {"argv": ["/bin/true"]}, "cpu.max": {"argv": ["/bin/true"]},
                                "cgroup.procs": {"argv": ["/bin/true"]}}
    capsules.update({name: {"argv": ["/bin/true"], **patch} for name, (patch, _, _) in bad.items()})
    doc = {"version": 1, "capsules": capsules}
    m = parse_manifest(doc)
    assert set(m.capsules) == {"ok"}
    for name, (_, field, text) in bad.items():
        assert m.errors[name].field == field and text in m.errors[name].message, m.errors[name]
    assert "named like a cgroup interface file (cpu.*)" in m.errors["cpu.max"].message
    assert "named like a cgroup interface file (cgroup.*)" in m.errors["cgroup.procs"].message
