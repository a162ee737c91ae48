# The capsule manifest's schema, for Nix: exo_init/pid1/manifest_schema.json (the one table of
# fields, types, defaults, bounds and docs that exo_init's loader also reads), plus what Nix derives
# from it. Builtins only, like manifest.nix, which checks and renders capsules by it.
#
#   schema = import ./schema.nix;
#   schema.sections.readiness.byName.fd      # { name = "fd"; type = "int"; min = 3; max = 1023; default = 3; doc = ...; }
#   schema.sections.readiness.defaults       # { kind = "started"; fd = 3; ... }
#   schema.options { inherit (lib) mkOption types; } "capsule"   # NixOS options (exosphere.nix)
#
# `options` and `optionType` take nixpkgs' `mkOption` and `types` as arguments and use nothing else
# of nixpkgs, so they evaluate (against a stand-in `types`) without nixpkgs too (tests/test_nix.py).
let
  inherit (builtins)
    filter
    fromJSON
    getAttr
    listToAttrs
    map
    mapAttrs
    readFile
    ;

  raw = fromJSON (readFile ../exo_init/pid1/manifest_schema.json);

  byName =
    fields:
    listToAttrs (
      map (f: {
        inherit (f) name;
        value = f;
      }) fields
    );

  # Each section gains its field names in order (`keys`), the fields by name and the defaults of
  # the fields that have one (required and nullable fields have none).
  withIndex =
    s:
    s
    // {
      keys = map (f: f.name) s.fields;
      byName = byName s.fields;
      defaults = listToAttrs (
        map (f: {
          inherit (f) name;
          value = f.default;
        }) (filter (f: f ? default) s.fields)
      );
      freeform = s.freeform or false;
    };

  sections = mapAttrs (_: withIndex) raw.sections;

  # The option type of one field (nixpkgs lib.types): the schema's type, its bounds, its values.
  optionType =
    { mkOption, types }:
    f:
    let
      t = f.type;
      sub = sections.${f.name};
      base =
        if t == "bool" then
          types.bool
        else if t == "string" then
          (if (f.nonempty or "") != "" then types.nonEmptyStr else types.str)
        else if t == "path" then
          types.str
        else if t == "int" then
          types.ints.between f.min f.max
        else if t == "number" then
          types.numbers.between f.min f.max
        else if t == "enum" then
          types.enum f.values
        else if t == "enum_list" then
          types.listOf (types.enum f.values)
        else if t == "names" || t == "devices" || t == "caps" || t == "syscalls" || t == "io_max" then
          types.listOf types.str
        else if t == "argv" then
          types.nonEmptyListOf types.str
        else if t == "env" then
          types.attrsOf types.str
        else if t == "signal" then
          types.either types.str types.ints.positive
        else if t == "size" then
          types.either types.str (types.ints.between 0 f.max)
        else if t == "cpu_max" then
          types.str
        else if t == "pids" then
          types.either (types.enum [ "max" ]) (types.ints.between f.min f.max)
        else if t == "grants" then
          types.attrsOf (
            types.enum [
              "ro"
              "rw"
            ]
          )
        else if t == "network" then
          types.either (types.enum [
            "none"
            "host"
          ]) (types.attrsOf types.anything)
        else if t == "section" then
          (
            if sub.freeform then
              types.attrsOf types.anything
            else
              types.submodule { options = options { inherit mkOption types; } f.name; }
          )
        else
          throw "exosphere: schema.nix: no option type for the field type ${t} (${f.name})";
    in
    if f.nullable or false then types.nullOr base else base;

  # A free-form section's option has no sub-options to document its keys, so its description does.
  freeformKeys =
    f:
    if f.type == "section" && sections.${f.name}.freeform then
      " Keys: " + builtins.concatStringsSep " " (map (k: "`${k.name}`: ${k.doc}") sections.${f.name}.fields)
    else
      "";

  # One mkOption per field of `section`, named as the field: its type, its default (null for a
  # nullable field; none for a required one), its example and its doc.
  options =
    { mkOption, types }:
    section:
    mapAttrs (
      _: f:
      mkOption (
        {
          type = optionType { inherit mkOption types; } f;
          description = f.doc + freeformKeys f;
        }
        // (if f ? default then { inherit (f) default; } else { })
        // (if f.nullable or false then { default = null; } else { })
        // (if f ? example then { inherit (f) example; } else { })
      )
    ) sections.${section}.byName;

  # A capsule's option value (a submodule's config) -> its manifest fields: every field of the
  # schema, sections cut down to their own fields (a nullable section left unset stays null, which
  # the renderer drops); anything else (`enable`, the module system's own attributes) is left out.
  fromOptions =
    c:
    mapAttrs (
      name: f:
      let
        v = getAttr name c;
      in
      if f.type == "section" && !sections.${name}.freeform && v != null then
        listToAttrs (
          map (k: {
            name = k;
            value = getAttr k v;
          }) sections.${name}.keys
        )
      else
        v
    ) sections.capsule.byName;
in
raw
// {
  inherit
    sections
    optionType
    options
    fromOptions
    ;
  topDefaults = (withIndex {
    fields = raw.top;
    freeform = false;
  }).defaults;
}
