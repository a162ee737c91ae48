"""The manifest schema: manifest_schema.json, the one table of the capsule manifest's fields.

Each section (the capsule itself, `readiness`, `restart`, `stop`, `quotas`, `wasm`, `capabilities`) lists
its fields in order, each with a type, a default (or `required`, or `nullable`: absent means
unset), bounds for numbers and sizes, and a one-line doc. exo_init/pid1/manifest.py checks and
fills documents by it, nixos-modules/manifest.nix does the same in Nix (reading the same file with
builtins.fromJSON), nixos-modules/schema.nix derives the NixOS options from it, and README.md's
field reference is generated from it:

    python3 -m exo_init.pid1.manifest_schema README.md   # rewrite the reference in place

`runtimes` names what a capsule's `runtime` may be besides `exec` (a program exo_init runs for
the capsule instead of its `argv`): for each, the section holding its configuration (a nullable
capsule field of the same name, required with that runtime and refused with any other), the Python
module that runs it (`python3 -m PROGRAM`, exo_init/runtimes/) and the readiness kinds it supports.
A new runtime is one entry here, one value of `capsule.runtime`, its section, and its program.

Invariants (checked when the file is loaded, so a bad schema fails at import, not at boot): every
type is a `FieldType`; every field has exactly one of a default, `required` or `nullable`; every
numeric field (int, number, size, pids, cpu_max) has bounds with min <= max; enum defaults are
among the values; `capsule.runtime` lists `exec` and exactly the runtimes, each runtime's section
exists and is a nullable capsule field, and its readiness kinds are `readiness.kind` values.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import Any


class FieldType(enum.StrEnum):
    BOOL = "bool"            # true or false
    STRING = "string"        # any string (`nonempty`: with the hint shown when it is empty)
    PATH = "path"            # an absolute path
    INT = "int"              # an integer in [min, max]
    NUMBER = "number"        # an integer or float in [min, max] (seconds); read as float
    ENUM = "enum"            # one of `values`
    ENUM_LIST = "enum_list"  # a list of `values` (repeats are one)
    NAMES = "names"          # a list of capsule names
    ARGV = "argv"            # a non-empty list of strings, the first an absolute path
    ENV = "env"              # an object of variable name -> string
    SIGNAL = "signal"        # a signal name (any case, SIG optional) or number, from `signals`
    SIZE = "size"            # bytes, "64M" (K M G T), or "max"; at most `max` bytes
    CPU_MAX = "cpu_max"      # "20%", "max" or "QUOTA [PERIOD]", bounded by `percent`, `quota`, `period`
    PIDS = "pids"            # an integer in [min, max] or "max"
    IO_MAX = "io_max"        # a list of `patterns.io_max` lines
    GRANTS = "grants"        # an object of normalised absolute path -> "ro" | "rw"
    NETWORK = "network"      # "none", "host" or {veth = {address; peer}}
    DEVICES = "devices"      # a list of paths under /dev/
    CAPS = "caps"            # a list of Linux capability names, none of `escape_caps`
    SYSCALLS = "syscalls"    # a list of system call names
    SECTION = "section"      # an object whose fields are the section of the same name
    HOSTNAME = "hostname"    # (top level) `patterns.hostname`
    CAPSULES = "capsules"    # (top level) name -> capsule


NUMERIC = frozenset({FieldType.INT, FieldType.NUMBER, FieldType.PIDS})


@dataclass(frozen=True)
class Bounds:
    min: int | float
    max: int | float

    def __contains__(self, value: object) -> bool:
        # `not` of the conjunction, so NaN is outside every range.
        return isinstance(value, int | float) and self.min <= value <= self.max

    def text(self) -> str:
        return f"between {number_text(self.min)} and {number_text(self.max)}"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    doc: str
    default: Any = None
    required: bool = False
    nullable: bool = False
    nonempty: str = ""                       # STRING: the hint when it is "" ("" = may be empty)
    bounds: Bounds | None = None             # INT, NUMBER, PIDS; SIZE (min 0)
    values: tuple[str, ...] = ()             # ENUM, ENUM_LIST
    example: Any = None
    extra: Mapping[str, Any] | None = None   # CPU_MAX: percent, quota, period (Bounds), default_period
    suffixes: tuple[str, ...] = ()           # PATH: it must end in one of these ("": any)

    @property
    def has_default(self) -> bool:
        return not (self.required or self.nullable)

    def sub_bounds(self, key: str) -> Bounds:
        """Bounds of one part of a composite value (cpu_max's percent, quota, period)."""
        assert self.extra is not None, self.name
        value = self.extra[key]
        assert isinstance(value, Bounds), (self.name, key)
        return value


@dataclass(frozen=True)
class Section:
    name: str
    doc: str
    fill: bool          # the renderer writes every default out (False: only what was given)
    # The NixOS option is a free attribute set, not a submodule: `capabilities.host = true` stands
    # alone, so the module must not fill in the other grants' defaults.
    freeform: bool
    fields: tuple[FieldSpec, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name}.{name}")


@dataclass(frozen=True)
class RuntimeSpec:
    """A capsule runtime other than `exec`: its configuration section, its program, its readiness."""

    name: str
    section: str                  # the capsule field (a section) holding its configuration
    program: str                  # the Python module exo_init runs (`python3 -m PROGRAM`)
    file: str                     # the section's path field naming the code it runs (bound into its world)
    readiness: tuple[str, ...]    # the readiness kinds it supports
    doc: str


@dataclass(frozen=True)
class Schema:
    version: int
    patterns: Mapping[str, str]
    size_units: Mapping[str, int]
    cgroup_prefixes: frozenset[str]   # a capsule name "PREFIX.anything" would be a cgroup interface file
    escape_caps: frozenset[str]
    signal_names: tuple[str, ...]
    signal_numbers: tuple[int, ...]
    top: Section
    sections: Mapping[str, Section]
    runtimes: Mapping[str, RuntimeSpec]

    def section(self, name: str) -> Section:
        return self.sections[name]


def number_text(value: object) -> str:
    """A number as both loaders print it: integers in full, floats as C's %g (what Nix's toJSON
    writes for a float), so the Python and Nix messages agree."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 63:
            return "an integer too large to print"  # (str() of a 4,301-digit int raises)
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def _bounds(raw: Mapping[str, Any], where: str) -> Bounds:
    lo, hi = raw.get("min", 0), raw["max"]
    if not (isinstance(lo, int | float) and isinstance(hi, int | float) and lo <= hi):
        raise ValueError(f"{where}: bad bounds {lo!r}..{hi!r}")
    return Bounds(lo, hi)


def _field(raw: Mapping[str, Any], where: str) -> FieldSpec:
    name = raw["name"]
    where = f"{where}.{name}"
    ftype = FieldType(raw["type"])
    known = {"name", "type", "doc", "default", "required", "nullable", "nonempty", "min", "max", "values",
             "example", "percent", "quota", "period", "default_period", "suffixes"}
    if set(raw) - known:
        raise ValueError(f"{where}: unknown schema keys {sorted(set(raw) - known)}")
    spec = FieldSpec(
        name=name, type=ftype, doc=raw["doc"], default=raw.get("default"),
        required=raw.get("required", False), nullable=raw.get("nullable", False),
        nonempty=raw.get("nonempty", ""),
        bounds=_bounds(raw, where) if "max" in raw else None,
        values=tuple(raw.get("values", ())), example=raw.get("example"),
        extra={k: _bounds(raw[k], f"{where}.{k}") for k in ("percent", "quota", "period")}
        | {"default_period": raw["default_period"]} if ftype is FieldType.CPU_MAX else None,
        suffixes=tuple(raw.get("suffixes", ())),
    )
    if spec.suffixes and ftype is not FieldType.PATH:
        raise ValueError(f"{where}: suffixes are for paths")
    if [spec.required, spec.nullable, "default" in raw].count(True) != 1:
        raise ValueError(f"{where}: needs exactly one of default, required, nullable")
    if (ftype in NUMERIC or ftype is FieldType.SIZE) and spec.bounds is None:
        raise ValueError(f"{where}: a numeric field needs bounds (min, max)")
    if ftype is FieldType.ENUM and spec.has_default and spec.default not in spec.values:
        raise ValueError(f"{where}: default {spec.default!r} is not one of {spec.values}")
    if ftype is FieldType.ENUM_LIST and (not spec.values or not set(spec.default or ()) <= set(spec.values)):
        raise ValueError(f"{where}: needs values, and a default of some of them")
    return spec


def _section(name: str, raw: Mapping[str, Any]) -> Section:
    known = {"doc", "fill", "freeform", "fields"}
    if set(raw) - known:
        raise ValueError(f"{name}: unknown schema keys {sorted(set(raw) - known)}")
    return Section(name=name, doc=raw["doc"], fill=raw["fill"], freeform=raw.get("freeform", False),
                   fields=tuple(_field(f, name) for f in raw["fields"]))


def _runtimes(raw: Mapping[str, Any], sections: Mapping[str, Section]) -> dict[str, RuntimeSpec]:
    capsule = sections["capsule"]
    runtimes = {name: RuntimeSpec(name=name, section=r["section"], program=r["program"], file=r["file"],
                                  readiness=tuple(r["readiness"]), doc=r["doc"]) for name, r in raw.items()}
    if list(capsule.field("runtime").values) != ["exec", *runtimes]:
        raise ValueError(f"capsule.runtime: its values must be exec and the runtimes {sorted(runtimes)}")
    kinds = sections["readiness"].field("kind").values
    for r in runtimes.values():
        spec = capsule.field(r.section) if r.section in capsule.keys else None
        if spec is None or spec.type is not FieldType.SECTION or not spec.nullable or r.section not in sections:
            raise ValueError(f"runtimes.{r.name}: {r.section} must be a nullable capsule section")
        if not set(r.readiness) <= set(kinds):
            raise ValueError(f"runtimes.{r.name}: unknown readiness kinds {sorted(set(r.readiness) - set(kinds))}")
        file = sections[r.section].field(r.file) if r.file in sections[r.section].keys else None
        if file is None or file.type is not FieldType.PATH or not file.required:
            raise ValueError(f"runtimes.{r.name}: file {r.file!r} must be a required path of its section")
    return runtimes


def parse_schema(doc: Mapping[str, Any]) -> Schema:
    sections = {name: _section(name, raw) for name, raw in doc["sections"].items()}
    for spec in sections["capsule"].fields:
        if spec.type is FieldType.SECTION and spec.name not in sections:
            raise ValueError(f"capsule.{spec.name}: no section of that name")
    return Schema(
        version=doc["version"],
        patterns=dict(doc["patterns"]),
        size_units=dict(doc["size_units"]),
        cgroup_prefixes=frozenset(doc["cgroup_prefixes"]),
        escape_caps=frozenset(doc["escape_caps"]),
        signal_names=tuple(doc["signals"]["names"]),
        signal_numbers=tuple(doc["signals"]["numbers"]),
        top=_section("top", {"doc": doc["top_doc"], "fill": True, "fields": doc["top"]}),
        sections=sections,
        runtimes=_runtimes(doc.get("runtimes", {}), sections),
    )


def schema_text() -> str:
    # (beside this file, as package data; importlib.resources would bring zipfile, tempfile and
    # threading into PID 1 for this one read)
    return Path(__file__).with_name("manifest_schema.json").read_text(encoding="utf-8")


SCHEMA = parse_schema(json.loads(schema_text()))


# --- README's field reference ----------------------------------------------------------------------

BEGIN = "<!-- BEGIN manifest-fields -->"
END = "<!-- END manifest-fields -->"

_TYPE_TEXT = {
    FieldType.BOOL: "bool", FieldType.STRING: "string", FieldType.PATH: "absolute path",
    FieldType.NAMES: "list of capsule names", FieldType.ARGV: "list of strings", FieldType.ENV: "object of strings",
    FieldType.SIGNAL: "signal name or number", FieldType.SIZE: "size", FieldType.CPU_MAX: "string",
    FieldType.IO_MAX: "list of strings", FieldType.GRANTS: "object of path -> \"ro\" \\| \"rw\"",
    FieldType.NETWORK: "string or object", FieldType.DEVICES: "list of paths", FieldType.CAPS: "list of strings",
    FieldType.SYSCALLS: "list of strings", FieldType.SECTION: "object", FieldType.HOSTNAME: "string",
    FieldType.CAPSULES: "object of name -> capsule",
}


def _type_text(spec: FieldSpec) -> str:
    if spec.type is FieldType.ENUM:
        return " \\| ".join(f"`{v}`" for v in spec.values)
    if spec.type is FieldType.ENUM_LIST:
        return "list of " + " \\| ".join(f"`{v}`" for v in spec.values)
    if spec.type in NUMERIC and spec.bounds is not None:
        base = {FieldType.INT: "integer", FieldType.NUMBER: "number", FieldType.PIDS: "integer or `\"max\"`"}
        return f"{base[spec.type]}, {number_text(spec.bounds.min)} to {number_text(spec.bounds.max)}"
    if spec.type is FieldType.SIZE and spec.bounds is not None:
        return f"size, at most {number_text(spec.bounds.max)} bytes"
    if spec.type is FieldType.PATH and spec.suffixes:
        return "absolute path ending in " + " or ".join(f"`{s}`" for s in spec.suffixes)
    return _TYPE_TEXT[spec.type]


def _default_text(spec: FieldSpec) -> str:
    if spec.required:
        return "required"
    if spec.nullable:
        return "unset"
    return f"`{json.dumps(spec.default)}`"


def reference_markdown(schema: Schema = SCHEMA) -> str:
    """The field reference: one table per section, every field with its type, bounds, default
    and doc, in the schema's order."""
    out = [BEGIN, "<!-- generated from exo_init/pid1/manifest_schema.json by "
           "`python3 -m exo_init.pid1.manifest_schema README.md`; do not edit by hand -->", "",
           "Every field (generated from `exo_init/pid1/manifest_schema.json`, the table that the loader, the "
           "Nix renderer and the NixOS options are derived from). Numbers outside their bounds are refused at "
           "load, by both the loader and the Nix renderer.", ""]
    for section in (schema.top, *schema.sections.values()):
        title = {"top": "The document", "capsule": "A capsule"}.get(section.name, f"`{section.name}`")
        out += [f"**{title}**: {section.doc}", "", "| field | type | default | |", "| --- | --- | --- | --- |"]
        out += [f"| `{f.name}` | {_type_text(f)} | {_default_text(f)} | {f.doc.replace('|', chr(92) + '|')} |"
                for f in section.fields]
        out.append("")
    out.append(END)
    return "\n".join(out)


def replace_reference(text: str, schema: Schema = SCHEMA) -> str:
    """`text` (README.md) with the part between the markers replaced by the generated reference."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} ... {END} section")
    return text[:start] + reference_markdown(schema) + text[end + len(END):]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m exo_init.pid1.manifest_schema README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(replace_reference(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
