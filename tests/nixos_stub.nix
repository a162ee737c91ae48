# A stand-in for nixpkgs to evaluate nixos-modules/exosphere.nix without it (there is no nixpkgs
# offline): `lib` (mkOption records the option, types are data, priorities are not modelled) and
# `pkgs` (packages are fake store paths /nix/store/NAME; a script's "store path" carries its text
# after a newline). Used by tests/test_nix.py (what the module decides) and by
# tests/vm/test_nixos_module.py, which maps these store paths onto the dev image's programs and
# boots the manifest the module renders. `nodePath`: a NixOS module of the flake's checks (e.g.
# nixos-modules/boot-test.nix) whose services.exosphere.capsules are added.
{ modulePath, modulesPath, extraJson, testing, nodePath ? "" }:
let
  inherit (builtins) attrNames concatStringsSep filter foldl' isFunction listToAttrs mapAttrs removeAttrs;
  option = attrs: attrs // { _option = true; };
  # Types are data here, so the test can read which type each option got.
  types = {
    str = "str"; bool = "bool"; port = "port"; package = "package"; nonEmptyStr = "nonEmptyStr";
    anything = "anything";
    enum = values: { enum = values; }; nullOr = t: { nullOr = t; }; either = a: b: { either = [ a b ]; };
    listOf = t: { listOf = t; }; nonEmptyListOf = t: { nonEmptyListOf = t; };
    attrsOf = t: { _attrsOf = t; };
    submodule = m: { _submodule = m; };
    numbers = { nonnegative = "number"; between = lo: hi: { numbersBetween = [ lo hi ]; }; };
    ints = { between = lo: hi: { intsBetween = [ lo hi ]; }; unsigned = "int"; positive = "ints.positive"; };
  };
  lib = {
    inherit types mapAttrs;
    mkOption = option;
    mkEnableOption = _: option { default = false; };
    mkDefault = v: v;
    mkOverride = _: v: v;
    mkIf = cond: v: if cond then v else { };
    mkMerge = foldl' (a: b: a // b) { };
    literalExpression = x: x;
    filterAttrs = pred: set: removeAttrs set (filter (n: !pred n set.${n}) (attrNames set));
    getAttrs = names: set: listToAttrs (map (n: { name = n; value = set.${n}; }) names);
    makeBinPath = ps: concatStringsSep ":" (map (p: "${p}/bin") ps);
    optional = cond: x: if cond then [ x ] else [ ];
  };
  pythonPackages = { psutil = "psutil"; pyroute2 = "pyroute2"; pydbus = "pydbus"; pygobject3 = "pygobject3";
                     wasmtime = "wasmtime"; };
  # A stub script's "store path" carries its text after a newline, so the test can read it.
  script = name: text: { inherit name text; outPath = "/nix/store/${name}\n${text}"; };
  pkgs = {
    kmod = "/nix/store/kmod"; bash = "/nix/store/bash"; bashInteractive = "/nix/store/bash-interactive";
    coreutils = "/nix/store/coreutils";
    # withPackages names the environment by the packages asked for (a name nixpkgs' python3Packages
    # has, per the stand-in set below; anything else is an evaluation error).
    python3 = { sitePackages = "lib/python3/site-packages";
                withPackages = f: "/nix/store/python-env-" + concatStringsSep "+" (f pythonPackages); };
    dbus = "/nix/store/dbus"; busybox = "/nix/store/busybox";
    writeTextDir = path: text: { outPath = "/nix/store/textdir/${path}\n${text}"; };
    writeShellScript = script;
    writeShellScriptBin = script;
    callPackage = _: _: "/nix/store/exo-init";
  };
  # A submodule's options, also inside nullOr (a nullable section).
  subOptions = name: type:
    let sub = type._submodule or (type.nullOr._submodule or null); in
    if sub == null then null else (if isFunction sub then sub { inherit name; } else sub).options;
  # Option values from definitions: the defined value, else the option's default (nested); a
  # nullable submodule that is not defined is its default, null.
  fill = name: opts: def: mapAttrs (k: o:
    let sub = subOptions name o.type; in
    if sub != null && (def ? ${k} || !(o.type ? nullOr)) then fill name sub (def.${k} or { })
    else if def ? ${k} then def.${k}
    else o.default or (throw "${name}.${k}: no definition and no default")) opts;
  capsuleOptions = name: subOptions name mod.options.services.exosphere.capsules.type._attrsOf;
  node = if nodePath == "" then { } else import nodePath { inherit pkgs; };
  defined = mod.config.services.exosphere.capsules // (node.services.exosphere.capsules or { })
    // builtins.fromJSON extraJson;
  config = {
    services.exosphere = {
      enable = true;
      package = "/nix/store/exo-init";
      hostname = mod.options.services.exosphere.hostname.default;
      capsules = mapAttrs (name: fill name (capsuleOptions name)) defined;
      sentry.enable = false;
      dashboard.enable = false;
    };
    testing.backdoor = testing == "on";
    networking.hostName = "exo-test";
    boot.initrd.systemd.enable = false;
    nix.package = "/nix/store/nix";
  };
  mod = import modulePath {
    inherit config lib pkgs modulesPath;
    options = if testing == "absent" then { } else { testing.backdoor = { }; };
  };
  fields = name: attrNames (subOptions "x" (capsuleOptions "x").${name}.type);
  # Each option as { type; default; description; example; } (a submodule's type as its options').
  describe = opts: mapAttrs (_: o:
    let
      sub = subOptions "x" o.type;
      described = { submodule = describe sub; };
    in
    removeAttrs o [ "_option" ]
    // (if sub != null then { type = if o.type ? nullOr then { nullOr = described; } else described; } else { })) opts;
in
{
  manifestJson = mod.config.environment.etc."exosphere/manifest.json".text;
  systemdExecutable = mod.config.boot.systemdExecutable;
  kernelParams = mod.config.boot.kernelParams;
  initrdSystemd = mod.config.boot.initrd.systemd.enable;
  assertions = map (a: a.assertion) mod.config.assertions;
  hostname = config.services.exosphere.hostname;
  capsuleFields = attrNames (capsuleOptions "x");
  readinessFields = fields "readiness";
  restartFields = fields "restart";
  stopFields = fields "stop";
  quotaFields = fields "quotas";
  capsuleOptions = describe (capsuleOptions "x");
  systemPackages = map toString mod.config.environment.systemPackages;
  dbusEnable = mod.config.services.dbus.enable;
  dbusPackages = map toString mod.config.services.dbus.packages;
}
