# The Exosphere capsule manifest, rendered in pure Nix.
#
#   import ./manifest.nix { hostname = "exosphere"; capsules = { NAME = { argv = [ ... ]; ... }; }; }
#
# returns the manifest attribute set; `builtins.toJSON` of it is the document that exo_init reads
# from /etc/exosphere/manifest.json. The schema is exactly the one `exo_init.pid1.manifest.parse_manifest`
# (exo_init/pid1/manifest.py) accepts: the same snake_case field names, the same defaults, the same
# limits. This file checks everything that loader checks, so a mistake is a Nix evaluation error at
# build time, naming the capsule and the field, instead of a capsule that fails on the running system:
#
#   error: exosphere: capsule "web": restart.policy must be one of always, on-failure, never, got "sometimes"
#
# Every problem found is reported (one line each), not just the first.
#
# Only builtins are used (no nixpkgs, no lib), so the Debian dev-image builder can evaluate it with a
# bare `nix-instantiate` and no channels (see render.nix), and the NixOS module can use it unchanged.
#
# Conventions:
#   * A field that is absent or null takes the loader's default. Defaults are written out explicitly,
#     so the JSON is self-describing; optional fields without a default (group, each quota) are
#     omitted rather than emitted as null.
#   * A capsule whose value is null is dropped (lets an extra capsules file remove a default one).
#   * `stop.signal` given by name is normalised to upper case with the SIG prefix ("term" -> "SIGTERM").
#   * Everything else is passed through as written; exo_init normalises sizes and percentages itself.
#   * Where the Python loader is more lenient (e.g. it accepts "5 %" or "05%" for cpu_max), this file
#     accepts the stricter, canonical subset.
{
  hostname ? "exosphere",
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
    removeAttrs
    replaceStrings
    stringLength
    substring
    toJSON
    typeOf
    ;

  # --- the schema: defaults and allowed values, mirroring exo_init/pid1/manifest.py -------------------

  manifestVersion = 1;

  capsuleKeys = [
    "argv"
    "env"
    "user"
    "group"
    "workdir"
    "type"
    "autostart"
    "after"
    "requires"
    "readiness"
    "restart"
    "stop"
    "quotas"
    "capabilities"
    "watchdog_sec"
    "console"
    "description"
  ];

  # No `user`: the loader picks root for `capabilities.host = true`, else a dynamic uid.
  capsuleDefaults = {
    env = { };
    workdir = "/";
    type = "simple";
    autostart = true;
    after = [ ];
    requires = [ ];
    capabilities = { };
    watchdog_sec = 0;
    console = false;
    description = "";
  };

  readinessDefaults = {
    kind = "started";
    fd = 3;
    path = "";
    host = "127.0.0.1";
    port = 0;
    timeout = 30.0;
  };

  restartDefaults = {
    policy = "on-failure";
    delay = 0.5;
    max_delay = 30.0;
    reset_after = 30.0;
    limit_burst = 5;
    limit_interval = 60.0;
  };

  stopDefaults = {
    signal = "SIGTERM";
    timeout = 10.0;
  };

  quotaKeys = [
    "cpu_max"
    "cpu_weight"
    "memory_max"
    "memory_high"
    "memory_swap_max"
    "pids_max"
    "io_weight"
    "io_max"
    "memory_oom_group"
  ];

  capabilityKeys = [
    "host"
    "filesystem"
    "network"
    "devices"
    "display"
    "bus"
    "control"
    "logs"
    "caps"
    "seccomp_deny"
  ];
  # Capabilities that would let an isolated capsule leave its namespaces (exo_init/pid1/manifest.py
  # ESCAPE_CAPS); whether a name exists at all, and syscall names, are checked by the loader.
  escapeCaps = [
    "CAP_SYS_ADMIN"
    "CAP_SYS_CHROOT"
    "CAP_SYS_MODULE"
    "CAP_SYS_PTRACE"
    "CAP_SYS_RAWIO"
    "CAP_MKNOD"
    "CAP_SYS_BOOT"
    "CAP_BPF"
    "CAP_PERFMON"
    "CAP_MAC_ADMIN"
    "CAP_MAC_OVERRIDE"
    "CAP_LINUX_IMMUTABLE"
    "CAP_DAC_READ_SEARCH"
  ];

  capsuleTypes = [
    "simple"
    "oneshot"
  ];
  readinessKinds = [
    "started"
    "notify"
    "fd"
    "file"
    "tcp"
  ];
  restartPolicies = [
    "always"
    "on-failure"
    "never"
  ];

  # Python's signal.Signals on Linux: the names (aliases included) and the numbers it accepts.
  signalNames = [
    "SIGABRT"
    "SIGALRM"
    "SIGBUS"
    "SIGCHLD"
    "SIGCLD"
    "SIGCONT"
    "SIGFPE"
    "SIGHUP"
    "SIGILL"
    "SIGINT"
    "SIGIO"
    "SIGIOT"
    "SIGKILL"
    "SIGPIPE"
    "SIGPOLL"
    "SIGPROF"
    "SIGPWR"
    "SIGQUIT"
    "SIGRTMAX"
    "SIGRTMIN"
    "SIGSEGV"
    "SIGSTKFLT"
    "SIGSTOP"
    "SIGSYS"
    "SIGTERM"
    "SIGTRAP"
    "SIGTSTP"
    "SIGTTIN"
    "SIGTTOU"
    "SIGURG"
    "SIGUSR1"
    "SIGUSR2"
    "SIGVTALRM"
    "SIGWINCH"
    "SIGXCPU"
    "SIGXFSZ"
  ];
  signalNumbers = genList (i: i + 1) 31 ++ [
    34
    64
  ];

  # Regular expressions (POSIX ERE, whole-string match as builtins.match does), as in the loader.
  nameRe = "[a-z0-9][a-z0-9_.-]{0,63}";
  hostnameRe = "[A-Za-z0-9][A-Za-z0-9-]{0,62}";
  sizeRe = "[0-9]+[KMGTkmgt]?[Bb]?";
  percentRe = "(0|[1-9][0-9]*)(\\.[0-9]+)?%";
  cpuMaxRawRe = "(max|[0-9]+)( [0-9]+)?";
  # A normalised absolute path other than / (no "." or ".." components, no trailing slash).
  grantPathRe = "(/[^/]+)+";
  capRe = "CAP_[A-Z_]+";
  cidrRe = "[0-9a-fA-F.:]+/[0-9]+";
  ioMaxRe = "[0-9]+:[0-9]+( (rbps|wbps|riops|wiops)=([0-9]+|max))+";

  # --- small helpers (builtins only) -----------------------------------------------------------

  chars = s: genList (i: substring i 1 s) (stringLength s);
  toUpper = replaceStrings (chars "abcdefghijklmnopqrstuvwxyz") (chars "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
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

  # A value as it appears in an error message: JSON for scalars, a description otherwise
  # (never force a derivation or copy a path into the store just to print it).
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

  checkEnum =
    field: values: v:
    check (elem v values) "${field} must be one of ${oneOf values}, got ${show v}";
  checkBool = field: v: check (isBool v) "${field} must be true or false, got ${show v}";
  checkString = field: v: check (isString v) "${field} must be a string, got ${show v}";
  checkAbsolute =
    field: v:
    if !isString v then
      checkString field v
    else
      check (hasPrefix "/" v) "${field} must be an absolute path, got ${show v}";
  checkNumber =
    field: v:
    if !isNumber v then
      [ "${field} must be a number, got ${show v}" ]
    else
      check (v >= 0) "${field} must be >= 0, got ${show v}";
  checkInt =
    field: lo: hi: v:
    if !isInt v then
      [ "${field} must be an integer, got ${show v}" ]
    else
      check (v >= lo && v <= hi) "${field} must be between ${toString lo} and ${toString hi}, got ${show v}";
  checkAttrs =
    field: v: then':
    if isAttrs v && !(v ? outPath) then then' else [ "${field} must be an attribute set, got ${show v}" ];
  indexed = list: genList (i: { inherit i; v = builtins.elemAt list i; }) (length list);

  # --- capabilities (the Scoped HAL) ---------------------------------------------------------------
  grantPath =
    field: v:
    if !isString v then
      checkString field v
    else
      check (
        matches grantPathRe v && !elem "." (splitPath v) && !elem ".." (splitPath v)
      ) "${field} must be a normalised absolute path other than /, got ${show v}";
  splitPath = v: filter isString (builtins.split "/" v);

  capabilityProblems =
    caps:
    let
      opt = key: f: if caps ? ${key} then f "capabilities.${key}" caps.${key} else [ ];
      list =
        field: v: each:
        if !isList v then [ "${field} must be a list, got ${show v}" ] else concatMap (x: each "${field}[${toString x.i}]" x.v) (indexed v);
      network =
        field: v:
        if isAttrs v then
          unknownKeys "${field}." [ "veth" ] v
          ++ (
            if !(v ? veth) || !isAttrs v.veth then
              [ "${field}.veth must be an attribute set { address; peer; }, got ${show (v.veth or null)}" ]
            else
              unknownKeys "${field}.veth." [ "address" "peer" ] v.veth
              ++ concatMap (
                k: check (v.veth ? ${k} && isString v.veth.${k} && matches cidrRe v.veth.${k}) "${field}.veth.${k} must be an address with a prefix length such as \"10.250.0.2/30\", got ${show (v.veth.${k} or null)}"
              ) [ "address" "peer" ]
          )
        else
          checkEnum field [ "none" "host" ] v;
    in
    checkAttrs "capabilities" caps (
      unknownKeys "capabilities." capabilityKeys caps
      ++ opt "host" checkBool
      ++ (
        if (caps.host or false) == true then
          map (k: "capabilities.${k} is meaningless with host = true (it grants everything)") (
            filter (k: k != "host") (attrNames caps)
          )
        else
          opt "filesystem" (
            field: v:
            checkAttrs field v (
              concatMap (
                path: grantPath "${field}.\"${path}\"" path ++ checkEnum "${field}.\"${path}\"" [ "ro" "rw" ] v.${path}
              ) (attrNames v)
            )
          )
          ++ opt "network" network
          ++ opt "devices" (
            field: v:
            list field v (f: d: grantPath f d ++ check (isString d && hasPrefix "/dev/" d) "${f} must be under /dev/, got ${show d}")
          )
          ++ opt "display" checkBool
          ++ opt "bus" checkBool
          ++ opt "control" checkBool
          ++ opt "logs" checkBool
          ++ opt "caps" (
            field: v:
            list field v (
              f: x:
              check (isString x && matches capRe x) "${f} must be a capability name such as \"CAP_NET_BIND_SERVICE\", got ${show x}"
              ++ check (!elem x escapeCaps) "${f}: ${show x} would let the capsule leave its namespaces; refused (use host = true)"
            )
          )
          ++ opt "seccomp_deny" (
            field: v: list field v (f: x: check (isString x && matches "[a-z0-9_]+" x) "${f} must be a system call name, got ${show x}")
          )
      )
    );

  # --- one capsule -------------------------------------------------------------------------------

  # Problems with capsule `name` (whose raw attribute set, nulls removed, is `c`), given the set of
  # all declared capsule names.
  capsuleProblems =
    declared: name: c:
    let
      get = field: c.${field} or capsuleDefaults.${field} or null;
      ctype = get "type";

      argvProblems =
        if !(c ? argv) then
          [ "argv is missing (the command to run, as a list of strings)" ]
        else if !isList c.argv then
          [ "argv must be a list of strings, got ${show c.argv}" ]
        else if c.argv == [ ] then
          [ "argv must not be empty" ]
        else
          concatMap (x: checkString "argv[${toString x.i}]" x.v) (indexed c.argv)
          ++ (
            if isString (head c.argv) then
              check (hasPrefix "/" (head c.argv)) "argv[0] must be an absolute path, got ${show (head c.argv)}"
            else
              [ ]
          );

      envProblems = checkAttrs "env" (get "env") (
        concatMap (
          k:
          check (k != "" && match ".*=.*" k == null) "env.${k} is not a valid variable name"
          ++ checkString "env.${k}" (get "env").${k}
        ) (attrNames (get "env"))
      );

      namesProblems =
        field: v:
        if !isList v then
          [ "${field} must be a list of capsule names, got ${show v}" ]
        else
          concatMap (
            x:
            if !isString x.v then
              [ "${field}[${toString x.i}] must be a capsule name (a string), got ${show x.v}" ]
            else if match nameRe x.v == null then
              [ "${field}[${toString x.i}] ${show x.v} is not a valid capsule name" ]
            else if x.v == name then
              [ "${field} must not name the capsule itself" ]
            else if field == "requires" && !(hasAttr x.v declared) then
              [ "requires names ${show x.v}, which is not declared" ]
            else
              [ ]
          ) (indexed v);

      readinessProblems =
        let
          r = c.readiness;
          rr = readinessDefaults // dropNulls r;
        in
        if !(c ? readiness) then
          [ ]
        else
          checkAttrs "readiness" r (
            unknownKeys "readiness." (attrNames readinessDefaults) r
            ++ checkEnum "readiness.kind" readinessKinds rr.kind
            ++ checkInt "readiness.fd" 3 1023 rr.fd
            ++ checkString "readiness.path" rr.path
            ++ checkString "readiness.host" rr.host
            ++ checkInt "readiness.port" 0 65535 rr.port
            ++ checkNumber "readiness.timeout" rr.timeout
            ++ check (
              ctype != "oneshot" || rr.kind == "started"
            ) "readiness.kind must be \"started\" for a oneshot capsule (it is ready when it exits 0), got ${show rr.kind}"
            ++ check (
              rr.kind != "file" || (isString rr.path && hasPrefix "/" rr.path)
            ) "readiness.path must be an absolute path when readiness.kind is \"file\", got ${show rr.path}"
            ++ check (rr.kind != "tcp" || rr.port != 0) "readiness.port must be set when readiness.kind is \"tcp\""
          );

      restartProblems =
        let
          r = c.restart;
          rr = restartDefaults // dropNulls r;
        in
        if !(c ? restart) then
          [ ]
        else
          checkAttrs "restart" r (
            unknownKeys "restart." (attrNames restartDefaults) r
            ++ checkEnum "restart.policy" restartPolicies rr.policy
            ++ checkNumber "restart.delay" rr.delay
            ++ checkNumber "restart.max_delay" rr.max_delay
            ++ checkNumber "restart.reset_after" rr.reset_after
            ++ checkInt "restart.limit_burst" 1 1000 rr.limit_burst
            ++ checkNumber "restart.limit_interval" rr.limit_interval
            ++ check (
              !(isNumber rr.delay && isNumber rr.max_delay) || rr.max_delay >= rr.delay
            ) "restart.max_delay must be >= restart.delay (${show rr.delay}), got ${show rr.max_delay}"
          );

      stopProblems =
        let
          s = c.stop;
          ss = stopDefaults // dropNulls s;
        in
        if !(c ? stop) then
          [ ]
        else
          checkAttrs "stop" s (
            unknownKeys "stop." (attrNames stopDefaults) s
            ++ check (
              (isString ss.signal && elem (normaliseSignal ss.signal) signalNames)
              || (isInt ss.signal && elem ss.signal signalNumbers)
            ) "stop.signal must be a signal name such as \"SIGTERM\" or a signal number, got ${show ss.signal}"
            ++ checkNumber "stop.timeout" ss.timeout
          );

      quotaProblems =
        let
          q = c.quotas;
          opt = key: f: if q ? ${key} && q.${key} != null then f "quotas.${key}" q.${key} else [ ];
          size =
            field: v:
            check (
              v == "max" || (isInt v && v >= 0) || matches sizeRe v
            ) "${field} must be a size such as \"64M\", \"1G\", 1048576 or \"max\", got ${show v}";
          percentOk =
            v:
            matches percentRe v
            && (
              let
                pct = builtins.fromJSON (head (match "(.*)%" v));
              in
              pct > 0 && pct <= 102400
            );
        in
        if !(c ? quotas) then
          [ ]
        else
          checkAttrs "quotas" q (
            unknownKeys "quotas." quotaKeys q
            ++ opt "cpu_max" (
              field: v:
              check (
                percentOk v || matches cpuMaxRawRe v
              ) "${field} must be a percentage such as \"20%\", \"max\" or \"QUOTA PERIOD\" in microseconds, got ${show v}"
            )
            ++ opt "cpu_weight" (field: checkInt field 1 10000)
            ++ opt "memory_max" size
            ++ opt "memory_high" size
            ++ opt "memory_swap_max" size
            ++ opt "pids_max" (
              field: v: if v == "max" then [ ] else checkInt field 1 4194304 v
            )
            ++ opt "io_weight" (field: checkInt field 1 10000)
            ++ opt "io_max" (
              field: v:
              if !isList v then
                [ "${field} must be a list of \"MAJ:MIN rbps=N ...\" lines, got ${show v}" ]
              else
                concatMap (
                  x:
                  check (matches ioMaxRe x.v) "${field}[${toString x.i}] must look like \"8:0 rbps=1048576 wiops=max\", got ${show x.v}"
                ) (indexed v)
            )
            ++ opt "memory_oom_group" checkBool
          );
    in
    unknownKeys "" capsuleKeys c
    ++ argvProblems
    ++ envProblems
    ++ (
      if c ? user then
        checkString "user" c.user ++ check (c.user != "") "user must not be empty (leave it out for a dynamic uid)"
      else
        [ ]
    )
    ++ (if c ? group then checkString "group" c.group else [ ])
    ++ checkAbsolute "workdir" (get "workdir")
    ++ checkEnum "type" capsuleTypes ctype
    ++ checkBool "autostart" (get "autostart")
    ++ namesProblems "after" (get "after")
    ++ namesProblems "requires" (get "requires")
    ++ readinessProblems
    ++ restartProblems
    ++ stopProblems
    ++ quotaProblems
    ++ capabilityProblems (get "capabilities")
    ++ checkNumber "watchdog_sec" (get "watchdog_sec")
    ++ checkBool "console" (get "console")
    ++ checkString "description" (get "description");

  normaliseSignal =
    s:
    let
      up = toUpper s;
    in
    if hasPrefix "SIG" up then up else "SIG${up}";

  # The capsule as written to JSON: defaults filled in, optional unset fields omitted.
  render =
    c:
    capsuleDefaults
    // removeAttrs c [
      "readiness"
      "restart"
      "stop"
      "quotas"
    ]
    // {
      readiness = readinessDefaults // dropNulls (c.readiness or { });
      restart = restartDefaults // dropNulls (c.restart or { });
      stop =
        let
          s = stopDefaults // dropNulls (c.stop or { });
        in
        s // { signal = if isString s.signal then normaliseSignal s.signal else s.signal; };
      quotas = dropNulls (c.quotas or { });
    };

  # --- the whole manifest ----------------------------------------------------------------------

  declared = if isAttrs capsules then filterAttrs (v: v != null) capsules else { };

  topProblems =
    check (matches hostnameRe hostname) "exosphere: hostname ${show hostname} is not a valid host name (1-63 of A-Z a-z 0-9 -, not starting with -)"
    ++ check (isAttrs capsules) "exosphere: capsules must be an attribute set of name -> capsule, got ${show capsules}";

  fieldProblems = concatMap (
    name:
    let
      c = declared.${name};
      prefix = "exosphere: capsule ${quote name}: ";
    in
    map (p: prefix + p) (
      if match nameRe name == null then
        [ "the name is not valid (1-64 of a-z 0-9 _ . -, starting with a letter or digit)" ]
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
      first = topProblems ++ (if isAttrs capsules then fieldProblems else [ ]);
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
