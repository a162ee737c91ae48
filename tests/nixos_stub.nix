# A stand-in for nixpkgs to evaluate nixos-modules/exosphere.nix without it (there is no nixpkgs
# offline): `lib` (mkOption records the option, types are data, priorities are not modelled) and
# `pkgs` (packages are fake store paths /nix/store/NAME; a script's "store path" carries its text
# after a newline). Used by tests/test_nix.py (what the module decides) and by
# tests/vm/test_nixos_module.py, which maps these store paths onto the dev image's programs and
# boots the manifest the module renders. `nodePath`: a NixOS module of the flake's checks (e.g.
# nixos-modules/boot-test.nix) whose services.exosphere.capsules are added.
{ modulePath, modulesPath, extraJson, testing, nodePath ? "", sentry ? "off", initrdSystemd ? "off" }:
let
  inherit (builtins) attrNames concatStringsSep filter foldl' isFunction listToAttrs mapAttrs removeAttrs;
  option = attrs: attrs // { _option = true; };
  # Types are data here, so the test can read which type each option got.
  types = {
    str = "str"; bool = "bool"; port = "port"; package = "package"; nonEmptyStr = "nonEmptyStr";
    anything = "anything";
    enum = values: { enum = values; }; nullOr = t: { nullOr = t; }; either = a: b: { either = [ a b ]; };
    listOf = t: { listOf = t; }; strMatching = re: { strMatching = re; }; nonEmptyListOf = t: { nonEmptyListOf = t; };
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
    mkForce = v: v;
    mkIf = cond: v: if cond then v else { };
    mkMerge = foldl' (a: b: a // b) { };
    literalExpression = x: x;
    filterAttrs = pred: set: removeAttrs set (filter (n: !pred n set.${n}) (attrNames set));
    getAttrs = names: set: listToAttrs (map (n: { name = n; value = set.${n}; }) names);
    makeBinPath = ps: concatStringsSep ":" (map (p: "${p}/bin") ps);
    optional = cond: x: if cond then [ x ] else [ ];
    splitString = s: filter builtins.isString (builtins.split "[.]" s);
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
    dbus = "/nix/store/dbus"; busybox = "/nix/store/busybox"; util-linux = "/nix/store/util-linux";
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
      sentry = { enable = sentry == "on"; policy = { }; dsnFile = null; };
      rootShell = { enable = node.services.exosphere.rootShell.enable or false;
                    tty = node.services.exosphere.rootShell.tty or "tty2"; };
      dashboard.enable = false;
    };
    testing.backdoor = testing == "on";
    networking.hostName = "exo-test";
    boot.initrd.systemd.enable = initrdSystemd == "on";
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

  # The NixOS options the module sets besides its own, each with a check of the type nixpkgs
  # declares for it (nixos-25.11; the declaring file is named), written like that type's `check`.
  # Every option the module sets must be in this table (optionErrors says which is not).
  is = {
    str = builtins.isString;
    bool = builtins.isBool;
    listOf = check: x: builtins.isList x && builtins.all check x;
    attrsOf = check: x: builtins.isAttrs x && builtins.all (n: check x.${n}) (attrNames x);
    strMatching = re: x: builtins.isString x && builtins.match re x != null;
    # types.path: coercible to a string that starts with "/".
    path = x: (builtins.isString x || builtins.isPath x || (builtins.isAttrs x && x ? outPath))
      && builtins.substring 0 1 (toString x) == "/";
    # types.package: a derivation or a store path (the stand-in's packages are store paths).
    package = x: let s = if builtins.isAttrs x && x ? outPath then x.outPath else x; in
      builtins.isString s && builtins.substring 0 11 s == "/nix/store/";
  };
  # environment.etc.<name>: a submodule; the module sets only `text` (types.nullOr types.lines).
  etcEntry = x: builtins.isAttrs x && attrNames x == [ "text" ] && builtins.isString x.text;
  nixosOptions = {
    # nixos/modules/misc/assertions.nix: listOf unspecified, read as { assertion; message; }
    assertions = is.listOf (a: builtins.isAttrs a && builtins.isBool a.assertion && builtins.isString a.message);
    warnings = is.listOf is.str;                                   # nixos/modules/misc/assertions.nix
    "boot.initrd.systemd.enable" = is.bool;                        # system/boot/systemd/initrd.nix (mkEnableOption)
    "boot.systemdExecutable" = is.str;                             # system/boot/stage-2.nix
    "boot.kernelParams" = is.listOf (is.strMatching ''([^"[:space:]]|"[^"]*")+''); # system/boot/kernel.nix (kernelParam)
    "environment.etc" = is.attrsOf etcEntry;                       # system/etc/etc.nix
    "environment.systemPackages" = is.listOf is.package;           # config/system-path.nix
    "services.dbus.enable" = is.bool;                              # services/system/dbus.nix
    "services.dbus.packages" = is.listOf is.path;                  # services/system/dbus.nix
    # system/boot/systemd/initrd.nix: services.<name>.serviceConfig is attrsOf unitOption (a
    # list of strings here); storePaths: listOf (either singleLineStr a store path)
    "boot.initrd.systemd.services.initrd-switch-root.serviceConfig.ExecStart" = is.listOf is.str;
    "boot.initrd.systemd.storePaths" = is.listOf (x: is.package x);
  };
  # The option paths the module's config sets (its own services.exosphere.* aside), down to a
  # declared option or a leaf.
  setPaths = prefix: v:
    let name = concatStringsSep "." prefix; in
    if prefix == [ "services" "exosphere" ] || v == { } then [ ]  # ({ }: the stand-in's mkIf false)
    else if nixosOptions ? ${name} || !(builtins.isAttrs v) || v ? outPath then [ name ]
    else builtins.concatLists (map (k: setPaths (prefix ++ [ k ]) v.${k}) (attrNames v));
  valueAt = name: builtins.foldl' (v: k: v.${k}) mod.config (lib.splitString name);
in
{
  optionErrors = builtins.concatLists (map (name:
    if !(nixosOptions ? ${name}) then [ "${name}: not declared in tests/nixos_stub.nix" ]
    else if !(nixosOptions.${name} (valueAt name)) then [ "${name}: not of its nixpkgs type" ]
    else [ ]) (setPaths [ ] mod.config));
  optionsSet = setPaths [ ] mod.config;
  initrdSwitchRoot = mod.config.boot.initrd.systemd.services.initrd-switch-root.serviceConfig.ExecStart or null;
  # The checks refuse what nixpkgs' types refuse (so optionErrors can fail).
  refused = {
    kernelParamWithSpace = !(nixosOptions."boot.kernelParams" [ "exo.python=/a b" ]);
    etcEntryWithoutText = !(etcEntry { source = "/nix/store/x"; });
    packageNotInStore = !(nixosOptions."environment.systemPackages" [ "/usr/bin" ]);
    boolAsString = !(nixosOptions."services.dbus.enable" "true");
  };
  manifestJson = mod.config.environment.etc."exosphere/manifest.json".text;
  systemdExecutable = mod.config.boot.systemdExecutable;
  kernelParams = mod.config.boot.kernelParams;
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
