# The Exosphere capsule manifest, rendered in pure Nix.
#
#   import ./manifest.nix { hostname = "exosphere"; capsules = { NAME = { argv = [ ... ]; ... }; }; }
#
# returns the manifest attribute set; `builtins.toJSON` of it is the document that exo_init reads
# from /etc/exosphere/manifest.json. The fields, their types, defaults and bounds are not written
# here: they are the table in exo_init/pid1/manifest_schema.json (through schema.nix), which
# exo_init's own loader (exo_init/pid1/manifest.py) reads too. This file checks each field by its
# type in that table, then the rules that relate fields (the same rules as the loader), so a
# mistake is a Nix evaluation error at build time, naming the capsule and the field, instead of a
# capsule that fails on the running system:
#
#   error: exosphere: capsule "web": restart.policy must be one of always, on-failure, never, got "sometimes"
#
# Every problem found is reported (one line each), not just the first. Out-of-bounds numbers are
# worded as the loader words them ("readiness.fd must be between 3 and 1023, got 2").
#
# Only builtins are used (no nixpkgs, no lib), so the Debian dev-image builder can evaluate it with a
# bare `nix-instantiate` and no channels (see render.nix), and the NixOS module can use it unchanged.
#
# Conventions:
#   * A field that is absent or null takes the schema's default. Defaults of the sections marked
#     `fill` (the capsule, readiness, restart, stop) are written out, so the JSON is
#     self-describing; optional fields without a default (user, group, each quota) are omitted
#     rather than emitted as null.
#   * A capsule whose value is null is dropped (lets an extra capsules file remove a default one).
#   * `stop.signal` given by name is normalised to upper case with the SIG prefix ("term" -> "SIGTERM").
#   * Everything else is passed through as written; exo_init normalises sizes and percentages itself.
#   * Where the Python loader is more lenient (e.g. it accepts "5 %" or "05%" for cpu_max), this file
#     accepts the stricter, canonical subset. What needs the running system's tables (which
#     capability and system call names exist) is checked by the loader only.
{
  hostname ? (import ./schema.nix).topDefaults.hostname,
  capsules,
}:
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    genList
    genericClosure
    hasAttr
    head
    isAttrs
    isBool
    isFloat
    isInt
    isList
    isString
    length
    listToAttrs
    map
    match
    replaceStrings
    stringLength
    substring
    toJSON
    typeOf
    ;

  # --- the schema: exo_init/pid1/manifest_schema.json, the table exo_init's loader also reads ----

  schema = import ./schema.nix;
  inherit (schema) sections patterns;
  manifestVersion = schema.version;
  units = schema.size_units;
  escapeCaps = schema.escape_caps;
  signalNames = schema.signals.names;
  signalNumbers = schema.signals.numbers;

  # Regular expressions (POSIX ERE, whole-string match as builtins.match does); the loader matches
  # the same patterns (re.fullmatch).
  nameRe = patterns.name;
  hostnameRe = patterns.hostname;
  sizeRe = patterns.size;
  percentRe = patterns.percent;
  cpuMaxRawRe = patterns.cpu_max_raw;
  ioMaxRe = patterns.io_max;
  capRe = patterns.capability;
  syscallRe = patterns.syscall;
  cidrRe = patterns.cidr;
  # A capsule name whose part before the first "." is one of these would be the name of a cgroup
  # interface file (cpu.max, cgroup.procs): its cgroup directory cannot be made beside them.
  cgroupPrefixes = schema.cgroup_prefixes;
  cgroupFileName = n: match "[^.]*[.].*" n != null && elem (head (match "([^.]*)[.].*" n)) cgroupPrefixes;
  validName = n: isString n && match nameRe n != null && !(cgroupFileName n);
  # A normalised absolute path other than / (no "." or ".." components, no trailing slash).
  grantPathRe = "(/[^/]+)+";

  # --- small helpers (builtins only) -----------------------------------------------------------

  chars = s: genList (i: substring i 1 s) (stringLength s);
  toUpper = replaceStrings (chars "abcdefghijklmnopqrstuvwxyz") (chars "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  hasSuffix =
    suffix: s:
    let
      n = stringLength s;
      k = stringLength suffix;
    in
    n >= k && substring (n - k) k s == suffix;
  matches = re: s: isString s && match re s != null;
  isNumber = v: isInt v || isFloat v;
  filterAttrs =
    pred: set:
    listToAttrs (
      concatMap (
        n:
        if pred set.${n} then
          [
            {
              name = n;
              value = set.${n};
            }
          ]
        else
          [ ]
      ) (attrNames set)
    );
  dropNulls = filterAttrs (v: v != null);
  oneOf = values: concatStringsSep ", " values;
  quote = toJSON;

  # A value as it appears in an error message: JSON for scalars (numbers as the loader prints
  # them: toJSON writes a float as C's %g), a description otherwise (never force a derivation or
  # copy a path into the store just to print it).
  show =
    v:
    let
      t = typeOf v;
    in
    if
      elem t [
        "string"
        "int"
        "float"
        "bool"
        "null"
      ]
    then
      toJSON v
    else if t == "path" then
      "the path ${toString v} (write it as a string)"
    else if t == "list" then
      "a list"
    else if t == "set" then
      (if v ? outPath then "a package (use \"\${pkg}/bin/...\")" else "an attribute set")
    else if t == "lambda" then
      "a function"
    else
      "a ${t}";

  # A problem is the text after `capsule "NAME": `; `check` yields one only when `ok` is false,
  # so the message (and anything it forces) is evaluated only for real problems.
  check =
    ok: problem:
    if ok then
      [ ]
    else
      [ problem ];

  unknownKeys =
    prefix: allowed: set:
    map (k: "${prefix}${k} is not a known field (allowed: ${oneOf allowed})") (
      filter (k: !elem k allowed) (attrNames set)
    );

  indexed = list: genList (i: { inherit i; v = builtins.elemAt list i; }) (length list);
  eachOf =
    field: v: each:
    if !isList v then
      [ "${field} must be a list, got ${show v}" ]
    else
      concatMap (x: each "${field}[${toString x.i}]" x.v) (indexed v);

  # Bounds, worded as the loader words them ("must be between 0 and 86400, got -1").
  rangeText = lo: hi: "between ${toJSON lo} and ${toJSON hi}";
  inRange = lo: hi: v: v >= lo && v <= hi;
  # A decimal digit string read as a number in [lo, hi], without reading a number too long for a
  # Nix integer (leading zeros do not count).
  stripZeros = s: head (match "0*([0-9]+)" s);
  digitsWithin =
    lo: hi: s:
    let
      d = stripZeros s;
    in
    stringLength d <= stringLength (toString hi) && inRange lo hi (builtins.fromJSON d);

  checkAttrs =
    field: v: then':
    if isAttrs v && !(v ? outPath) then then' else [ "${field} must be an attribute set, got ${show v}" ];
  checkBool = field: v: check (isBool v) "${field} must be true or false, got ${show v}";
  checkString = field: v: check (isString v) "${field} must be a string, got ${show v}";
  # A number of the right kind (`isKind`, named `what`) within the field's bounds.
  checkBounded =
    isKind: what: field: f: v:
    if !isKind v then
      [ "${field} must be ${what}, got ${show v}" ]
    else
      check (inRange f.min f.max v) "${field} must be ${rangeText f.min f.max}, got ${show v}";
  checkInt = checkBounded isInt "an integer";

  grantPath =
    field: v:
    if !isString v then
      checkString field v
    else
      check (
        matches grantPathRe v && !elem "." (splitPath v) && !elem ".." (splitPath v)
      ) "${field} must be a normalised absolute path other than /, got ${show v}";
  splitPath = v: filter isString (builtins.split "/" v);

  normaliseSignal =
    s:
    let
      up = toUpper s;
    in
    if hasPrefix "SIG" up then up else "SIG${up}";

  # --- one check per schema type: field (dotted path) -> its schema entry -> value -> problems ------

  typeChecks = {
    bool = field: _: checkBool field;

    string =
      field: f: v:
      checkString field v
      ++ check (!isString v || (f.nonempty or "") == "" || v != "") "${field} must not be empty (${f.nonempty or ""})";

    path =
      field: f: v:
      let
        suffixes = f.suffixes or [ ];
      in
      if !isString v then
        checkString field v
      else
        check (hasPrefix "/" v) "${field} must be an absolute path, got ${show v}"
        ++ check (
          suffixes == [ ] || builtins.any (sfx: hasSuffix sfx v) suffixes
        ) "${field} must end in ${concatStringsSep " or " suffixes}, got ${show v}";

    int = checkInt;

    number = checkBounded isNumber "a number";

    enum = field: f: v: check (elem v f.values) "${field} must be one of ${oneOf f.values}, got ${show v}";

    enum_list =
      field: f: v:
      eachOf field v (x: y: check (elem y f.values) "${x} must be one of ${oneOf f.values}, got ${show y}");

    names =
      field: _: v:
      if !isList v then
        [ "${field} must be a list of capsule names, got ${show v}" ]
      else
        concatMap (
          x:
          if !isString x.v then
            [ "${field}[${toString x.i}] must be a capsule name (a string), got ${show x.v}" ]
          else
            check (validName x.v) "${field}[${toString x.i}] ${show x.v} is not a valid capsule name"
        ) (indexed v);

    argv =
      field: _: v:
      if !isList v then
        [ "${field} must be a list of strings, got ${show v}" ]
      else if v == [ ] then
        [ "${field} must not be empty" ]
      else
        concatMap (x: checkString "${field}[${toString x.i}]" x.v) (indexed v)
        ++ (
          if isString (head v) then
            check (hasPrefix "/" (head v)) "${field}[0] must be an absolute path, got ${show (head v)}"
          else
            [ ]
        );

    env =
      field: _: v:
      checkAttrs field v (
        concatMap (
          k:
          check (k != "" && match ".*=.*" k == null) "${field}.${k} is not a valid variable name"
          ++ checkString "${field}.${k}" v.${k}
        ) (attrNames v)
      );

    signal =
      field: _: v:
      check (
        (isString v && elem (normaliseSignal v) signalNames) || (isInt v && elem v signalNumbers)
      ) "${field} must be a signal name such as \"SIGTERM\" or a signal number, got ${show v}";

    size =
      field: f: v:
      let
        m = if isString v then match sizeRe v else null;
        perUnit = builtins.div f.max units.${toUpper (builtins.elemAt m 1)};
        wrong = "${field} must be a size such as \"64M\", \"1G\", 1048576 or \"max\", got ${show v}";
      in
      if v == "max" then
        [ ]
      else if isInt v then
        (if v < 0 then [ wrong ] else check (inRange 0 f.max v) "${field} must be ${rangeText 0 f.max}, got ${show v}")
      else if m == null then
        [ wrong ]
      else
        check (digitsWithin 0 perUnit (head m)) "${field} must be at most ${toJSON f.max} bytes, got ${show v}";

    cpu_max =
      field: f: v:
      let
        wrong = "${field} must be a percentage such as \"20%\", \"max\" or \"QUOTA PERIOD\" in microseconds, got ${show v}";
        percent = if isString v then match percentRe v else null;
        raw = if isString v then match cpuMaxRawRe v else null;
        partOk = b: s: s == null || s == "max" || digitsWithin b.min b.max s;
      in
      if percent != null then
        check (
          stringLength (stripZeros (head percent)) <= 7
          && inRange f.percent.min f.percent.max (builtins.fromJSON (head (match "(.*)%" v)))
        ) "${field} must be a percentage ${rangeText f.percent.min f.percent.max}, got ${show v}"
      else if raw != null then
        check (partOk f.quota (builtins.elemAt raw 0)) "${field} must have a quota ${rangeText f.quota.min f.quota.max} microseconds, got ${show v}"
        ++ check (partOk f.period (builtins.elemAt raw 2)) "${field} must have a period ${rangeText f.period.min f.period.max} microseconds, got ${show v}"
      else
        [ wrong ];

    pids = field: f: v: if v == "max" then [ ] else checkInt field f v;

    io_max =
      field: _: v:
      if !isList v then
        [ "${field} must be a list of \"MAJ:MIN rbps=N ...\" lines, got ${show v}" ]
      else
        concatMap (
          x:
          check (matches ioMaxRe x.v) "${field}[${toString x.i}] must look like \"8:0 rbps=1048576 wiops=max\", got ${show x.v}"
        ) (indexed v);

    grants =
      field: _: v:
      checkAttrs field v (
        concatMap (
          path:
          grantPath "${field}.\"${path}\"" path
          ++ typeChecks.enum "${field}.\"${path}\"" {
            values = [
              "ro"
              "rw"
            ];
          } v.${path}
        ) (attrNames v)
      );

    network =
      field: _: v:
      if isAttrs v then
        unknownKeys "${field}." [ "veth" ] v
        ++ (
          if !(v ? veth) || !isAttrs v.veth then
            [ "${field}.veth must be an attribute set { address; peer; }, got ${show (v.veth or null)}" ]
          else
            unknownKeys "${field}.veth." [
              "address"
              "peer"
            ] v.veth
            ++ concatMap
              (
                k:
                check (v.veth ? ${k} && matches cidrRe v.veth.${k}) "${field}.veth.${k} must be an address with a prefix length such as \"10.250.0.2/30\", got ${show (v.veth.${k} or null)}"
              )
              [
                "address"
                "peer"
              ]
        )
      else
        typeChecks.enum field {
          values = [
            "none"
            "host"
          ];
        } v;

    devices =
      field: _: v:
      eachOf field v (
        f: d: grantPath f d ++ check (isString d && hasPrefix "/dev/" d) "${f} must be under /dev/, got ${show d}"
      );

    caps =
      field: _: v:
      eachOf field v (
        f: x:
        check (matches capRe x) "${f} must be a capability name such as \"CAP_NET_BIND_SERVICE\", got ${show x}"
        ++ check (!elem x escapeCaps) "${f}: ${show x} would let the capsule leave its namespaces; refused (use host = true)"
      );

    syscalls =
      field: _: v:
      eachOf field v (f: x: check (matches syscallRe x) "${f} must be a system call name, got ${show x}");
  };

  # --- sections: the fields by the table, then the rules that relate fields ------------------------

  # Problems with the fields of section `name` in `v` (an attribute set, nulls removed), each field
  # at its dotted path under `prefix`; absent fields are checked at their default.
  fieldProblems =
    ctx: name: prefix: v:
    let
      s = sections.${name};
      one =
        f:
        let
          path = "${prefix}${f.name}";
        in
        if v ? ${f.name} then
          valueProblems ctx path f v.${f.name}
        else if f.required or false then
          [ "${path} is missing (${f.doc})" ]
        else if f ? default then
          valueProblems ctx path f f.default
        else
          [ ];
    in
    unknownKeys prefix s.keys v ++ concatMap one s.fields;

  valueProblems =
    ctx: path: f: v:
    if f.type == "section" then
      checkAttrs path v (
        if f.name == "capabilities" then
          capabilityProblems ctx "${path}." v
        else
          fieldProblems ctx f.name "${path}." (dropNulls v) ++ rules.${f.name} ctx (sections.${f.name}.defaults // dropNulls v)
      )
    else
      typeChecks.${f.type} path f v;

  # Cross-field rules, given the section with defaults filled in; each only where the fields it
  # relates are of the right type (their own problems are reported by the type checks).
  rules = {
    readiness =
      ctx: r:
      check (
        ctx.type != "oneshot" || r.kind == "started"
      ) "readiness.kind must be \"started\" for a oneshot capsule (it is ready when it exits 0), got ${show r.kind}"
      ++ check (
        r.kind != "file" || (isString r.path && hasPrefix "/" r.path)
      ) "readiness.path must be an absolute path when readiness.kind is \"file\", got ${show r.path}"
      ++ check (r.kind != "tcp" || r.port != 0) "readiness.port must be set when readiness.kind is \"tcp\"";

    restart =
      _: r:
      check (
        !(isNumber r.delay && isNumber r.max_delay) || r.max_delay >= r.delay
      ) "restart.max_delay must be >= restart.delay (${show r.delay}), got ${show r.max_delay}";

    stop = _: _: [ ];

    quotas = _: _: [ ];

    wasm = _: _: [ ];

    crush = _: _: [ ];

    health =
      ctx: h:
      let
        kind = h.kind or null; # (a missing kind is the field check's problem)
      in
      check (ctx.type != "oneshot") "health: a oneshot capsule runs to completion; it takes no liveness check"
      ++ check (
        kind != "file" || (isString h.path && hasPrefix "/" h.path)
      ) "health.path must be an absolute path when health.kind is \"file\", got ${show h.path}"
      ++ check (kind != "tcp" || h.port != 0) "health.port must be set when health.kind is \"tcp\""
      ++ check (kind != "exec" || h ? argv) "health.argv must be set when health.kind is \"exec\""
      ++ check (kind == "exec" || kind == null || !(h ? argv)) "health.argv is only for health.kind = \"exec\"";

    # `requires` implies `after`; neither may name the capsule itself; what it requires must exist.
    capsule =
      ctx: c:
      concatMap (
        field:
        let
          names = if isList c.${field} then filter isString c.${field} else [ ];
        in
        check (!elem ctx.name names) "${field} must not name the capsule itself"
        ++ (
          if field == "requires" then
            map (d: "requires names ${show d}, which is not declared") (
              filter (d: validName d && !(hasAttr d ctx.declared)) names
            )
          else
            [ ]
        )
      ) [
        "after"
        "requires"
      ];
  };

  # `argv` is for runtime "exec"; each runtime of the schema's `runtimes` table has its own section,
  # which it needs and no other runtime takes, and supports only some readiness kinds. `c` is the
  # capsule with its defaults filled in (nulls removed).
  runtimeProblems =
    c:
    let
      runtime = c.runtime;
      runtimes = schema.runtimes;
      spec = runtimes.${runtime};
      readiness = sections.readiness.defaults // (if isAttrs c.readiness then dropNulls c.readiness else { });
    in
    concatMap (
      r:
      check (
        r == runtime || !(c ? ${runtimes.${r}.section})
      ) "${runtimes.${r}.section} is only for runtime = \"${r}\" (this capsule's runtime is ${show runtime})"
    ) (attrNames runtimes)
    ++ (
      if runtime == "exec" then
        check (c ? argv) "argv is missing (the command to run, with arguments; required for runtime = \"exec\")"
      else if isString runtime && runtimes ? ${runtime} then
        check (
          !(c ? argv)
        ) "argv must be left out: a ${runtime} capsule's command is derived (exo_init runs ${spec.program})"
        ++ check (c ? ${spec.section}) "${spec.section} is missing (runtime = \"${runtime}\" needs its ${spec.section} section)"
        ++ check (elem readiness.kind spec.readiness) "readiness.kind must be ${concatStringsSep " or " spec.readiness} for a ${runtime} capsule, got ${show readiness.kind}"
      else
        [ ] # (an unknown runtime is reported by its enum check)
    );

  # The capabilities (the Scoped HAL): `host = true` stands alone; otherwise each grant by its type.
  capabilityProblems =
    ctx: prefix: caps:
    let
      s = sections.capabilities;
      given = filter (k: elem k s.keys) (attrNames caps);
    in
    unknownKeys prefix s.keys caps
    ++ (
      if caps ? host && caps.host == true then
        map (k: "${prefix}${k} is meaningless with host = true (it grants everything)") (filter (k: k != "host") given)
      else
        concatMap (k: valueProblems ctx "${prefix}${k}" s.byName.${k} caps.${k}) given
    );

  # --- one capsule -------------------------------------------------------------------------------

  # Problems with capsule `name` (whose raw attribute set, nulls removed, is `c`), given the set of
  # all declared capsule names.
  capsuleProblems =
    declared: name: c:
    let
      ctx = {
        inherit name declared;
        type = c.type or sections.capsule.defaults.type;
      };
    in
    fieldProblems ctx "capsule" "" c
    ++ rules.capsule ctx (sections.capsule.defaults // c)
    ++ runtimeProblems (sections.capsule.defaults // c);

  # The capsule as written to JSON: sections with `fill` get every default written out (so the
  # JSON is self-describing), the others only what was given; nullable fields without a value are
  # omitted; signal names are normalised.
  renderSection =
    name: v:
    let
      s = sections.${name};
    in
    builtins.mapAttrs (
      k: x:
      let
        f = s.byName.${k};
      in
      if f.type == "section" then
        renderSection k x
      else if f.type == "signal" && isString x then
        normaliseSignal x
      else
        x
    ) ((if s.fill then s.defaults else { }) // dropNulls v);
  render = renderSection "capsule";

  # --- the whole manifest ----------------------------------------------------------------------

  declared = if isAttrs capsules then filterAttrs (v: v != null) capsules else { };

  topProblems =
    check (matches hostnameRe hostname) "exosphere: hostname ${show hostname} is not a valid host name (1-63 of A-Z a-z 0-9 -, not starting with -)"
    ++ check (isAttrs capsules) "exosphere: capsules must be an attribute set of name -> capsule, got ${show capsules}";

  capsulesProblems = concatMap (
    name:
    let
      c = declared.${name};
      prefix = "exosphere: capsule ${quote name}: ";
    in
    map (p: prefix + p) (
      if match nameRe name == null then
        [ "the name is not valid (1-64 of a-z 0-9 _ . -, starting with a letter or digit)" ]
      else if cgroupFileName name then
        [ "the name is named like a cgroup interface file (${head (match "([^.]*)[.].*" name)}.*); choose another name" ]
      else if !isAttrs c || c ? outPath then
        [ "must be an attribute set of capsule fields, got ${show c}" ]
      else
        capsuleProblems declared name (dropNulls c)
    )
  ) (attrNames declared);

  # Dependency cycles through after/requires (only once every capsule is otherwise valid, so the
  # lists are known to be lists of names). Each capsule's closure carries the path that reached it.
  deps =
    name:
    let
      c = dropNulls declared.${name};
    in
    filter (d: hasAttr d declared) ((c.after or [ ]) ++ (c.requires or [ ]));
  cycleProblems = concatMap (
    name:
    let
      reached = genericClosure {
        startSet = map (d: {
          key = d;
          path = [
            name
            d
          ];
        }) (deps name);
        operator =
          item:
          map (d: {
            key = d;
            path = item.path ++ [ d ];
          }) (deps item.key);
      };
      back = filter (item: item.key == name) reached;
    in
    if back == [ ] then
      [ ]
    else
      [
        "exosphere: capsule ${quote name}: after/requires: dependency cycle ${concatStringsSep " -> " (head back).path}"
      ]
  ) (attrNames declared);

  problems =
    let
      first = topProblems ++ (if isAttrs capsules then capsulesProblems else [ ]);
    in
    if first != [ ] then first else cycleProblems;

  manifest = {
    version = manifestVersion;
    inherit hostname;
    capsules = builtins.mapAttrs (_: c: render (dropNulls c)) declared;
  };
in
if problems == [ ] then
  manifest
else
  throw (
    concatStringsSep "\n" (
      (if length problems > 1 then [ "exosphere: ${toString (length problems)} problems in the capsule manifest:" ] else [ ])
      ++ problems
    )
  )
