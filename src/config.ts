import fs from "node:fs";
import { LOCATION_DEFAULTS, Layout } from "./layout.js";
import { HostError } from "./errors.js";

/**
 * /etc/libvirt/virt-aa-hook.conf: libvirt-style `key = "value"` lines and `#` comments.
 *
 * The format is deliberately narrow so that a POSIX sh `while read` loop (the emulator wrapper,
 * hooks/qemu-wrapper) reads the same values we do: one assignment per line, the value either a
 * bare word or one pair of double quotes around text without `"`, nothing after it (no trailing
 * comments). Anything else is an error naming the file, the line and the key: a typo in a
 * security setting must never silently fall back to a default.
 *
 * Paths in the config are host paths, mapped through the layout like every other host path,
 * except `parser`, which names the program we execute from this machine. Their defaults are the
 * layout's (LOCATION_DEFAULTS); once the config is read, `Layout.from(root, config)` (or
 * `loadLayout`) is the layout every consumer reads them from.
 */
export interface Config {
  /** enforce: load profiles enforcing; complain: load with `apparmor_parser -C`; off: do nothing. */
  mode: "enforce" | "complain" | "off";
  /** Without kernel AppArmor (and no subdomainfs): fail the start, only compile the profile, or skip. */
  noApparmor: "fail" | "compile-only" | "skip";
  /** At `started`: QEMU not in libvirt-<uuid> fails the start (enforce), is logged (warn), or is not checked. */
  startedCheck: "enforce" | "warn" | "off";
  /** At `reconnect`: a failure is logged and the hook exits 0 (log), or exits 1, which kills the guest (fail). */
  reconnectFailure: "log" | "fail";
  /** Absolute path of apparmor_parser on this machine (not mapped through the root). */
  parser: string;
  /** Features file passed as `-M`; "" = the kernel's own, or /usr/share/apparmor-features/features without one. */
  featuresFile: string;
  /** Parser cache (`-L`). */
  cacheDir: string;
  /** TEMPLATE.qemu the per-guest profile is created from. */
  template: string;
  /** Base directory for the profile's includes (`--base`): tunables/, abstractions/, libvirt/. */
  apparmorDir: string;
  /** Load into this directory (`--subdomainfs`) instead of the kernel; "" = the kernel. */
  subdomainfs: string;
  /** Seconds to wait for another virt-aa-hook working on the same guest. */
  lockTimeout: number;
  /** Seconds one apparmor_parser run may take before it is killed and the start fails. */
  parserTimeout: number;
  logLevel: "error" | "warn" | "info" | "debug";
  /** One line per hook call is appended here; "" disables the log. */
  logFile: string;
  /**
   * How QEMU gets into its profile (docs/attach-modes.md):
   * - helper:   libvirt's own AppArmor driver stays on with dynamic labels (no adoption); its
   *             `/usr/lib/libvirt/virt-aa-helper` is diverted (dpkg-divert) to ours, so every
   *             profile it asks for (start, hotplug, media change, snapshot, block job, restore)
   *             is written by virt-aa-hook's generator and policy;
   * - seclabel: adopted domains carry a static label `libvirt-<uuid>` libvirt's driver transitions to;
   * - wrapper:  adopted domains' `<emulator>` is our wrapper (libvirt's driver off);
   * - none:     nothing of ours attaches QEMU.
   */
  attach: "wrapper" | "seclabel" | "helper" | "none";
  requireAttach: boolean;
  /**
   * Whether a domain's own `<vah:mode>` (its metadata, written by whoever may define the domain) is
   * honoured (docs/metadata.md):
   * - ignore:  never; a guest runs in `mode` (a request for another mode is logged as a warning);
   * - tighten: only `enforce` (a guest may ask to be enforced under `mode = "complain"`);
   * - any:     both; the admin trusts everyone who may define domains with turning enforcement off.
   */
  guestMode: "ignore" | "tighten" | "any";
  /** Where the real emulators live, for the emulator wrapper. */
  emulatorDir: string;
  /**
   * The compiled-policy store (apparmor/compiled-store.ts, docs/compiled-store.md): an unchanged
   * profile is loaded from its stored compile instead of running apparmor_parser. Off: every load
   * goes through the parser (and its own cache).
   */
  compiledStore: boolean;
  /** The store's size bound in MiB: least recently used entries are evicted beyond it. */
  compiledStoreMaxSize: number;
  /** Days an entry may go unused before it is evicted. */
  compiledStoreMaxAge: number;
}

export const DEFAULT_CONFIG: Readonly<Config> = Object.freeze({
  mode: "enforce",
  noApparmor: "fail",
  startedCheck: "warn",
  reconnectFailure: "log",
  lockTimeout: 30,
  parserTimeout: 60,
  logLevel: "info",
  attach: "none",
  requireAttach: false,
  guestMode: "ignore",
  compiledStore: true,
  compiledStoreMaxSize: 256,
  compiledStoreMaxAge: 60,
  ...LOCATION_DEFAULTS,
});

/** A config file that cannot be used; the message names file, line and key. */
export class ConfigError extends HostError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly key: string,
    readonly reason: string,
  ) {
    super(`cannot read config ${file}${line > 0 ? `: line ${line}` : ""}${key ? `: ${key}` : ""}: ${reason}`);
    this.name = "ConfigError";
  }
}

type Setter = (cfg: Config, value: string) => string | undefined;

function oneOf<K extends keyof Config>(key: K, allowed: readonly string[]): Setter {
  return (cfg, value) => {
    if (!allowed.includes(value)) return `must be one of ${allowed.join(", ")}, not ${JSON.stringify(value)}`;
    (cfg as unknown as Record<string, unknown>)[key] = value;
    return undefined;
  };
}

function absolutePath<K extends keyof Config>(key: K, allowEmpty: boolean): Setter {
  return (cfg, value) => {
    if (value === "" && allowEmpty) {
      (cfg as unknown as Record<string, unknown>)[key] = "";
      return undefined;
    }
    if (!value.startsWith("/")) return `must be an absolute path${allowEmpty ? ' or ""' : ""}, not ${JSON.stringify(value)}`;
    if (value.split("/").includes("..")) return `must not contain "..": ${JSON.stringify(value)}`;
    (cfg as unknown as Record<string, unknown>)[key] = value;
    return undefined;
  };
}

function wholeNumber<K extends keyof Config>(key: K, min: number, max: number, unit: string): Setter {
  return (cfg, value) => {
    if (!/^[0-9]{1,6}$/.test(value) || Number(value) < min || Number(value) > max) {
      return `must be a whole number of ${unit} from ${min} to ${max}, not ${JSON.stringify(value)}`;
    }
    (cfg as unknown as Record<string, unknown>)[key] = Number(value);
    return undefined;
  };
}

const SETTERS: Record<string, Setter> = {
  mode: oneOf("mode", ["enforce", "complain", "off"]),
  no_apparmor: oneOf("noApparmor", ["fail", "compile-only", "skip"]),
  started_check: oneOf("startedCheck", ["enforce", "warn", "off"]),
  reconnect_failure: oneOf("reconnectFailure", ["log", "fail"]),
  parser: absolutePath("parser", false),
  features_file: absolutePath("featuresFile", true),
  cache_dir: absolutePath("cacheDir", false),
  template: absolutePath("template", false),
  apparmor_dir: absolutePath("apparmorDir", false),
  subdomainfs: absolutePath("subdomainfs", true),
  lock_timeout: (cfg, value) => {
    if (!/^[0-9]{1,4}$/.test(value) || Number(value) < 1 || Number(value) > 3600) {
      return `must be a whole number of seconds from 1 to 3600, not ${JSON.stringify(value)}`;
    }
    cfg.lockTimeout = Number(value);
    return undefined;
  },
  parser_timeout: (cfg, value) => {
    if (!/^[0-9]{1,4}$/.test(value) || Number(value) < 5 || Number(value) > 3600) {
      return `must be a whole number of seconds from 5 to 3600, not ${JSON.stringify(value)}`;
    }
    cfg.parserTimeout = Number(value);
    return undefined;
  },
  log_level: oneOf("logLevel", ["error", "warn", "info", "debug"]),
  log_file: absolutePath("logFile", true),
  attach: oneOf("attach", ["wrapper", "seclabel", "helper", "none"]),
  require_attach: (cfg, value) => {
    if (value !== "yes" && value !== "no") return `must be yes or no, not ${JSON.stringify(value)}`;
    cfg.requireAttach = value === "yes";
    return undefined;
  },
  emulator_dir: absolutePath("emulatorDir", false),
  guest_mode: oneOf("guestMode", ["ignore", "tighten", "any"]),
  compiled_store: (cfg, value) => {
    if (value !== "yes" && value !== "no") return `must be yes or no, not ${JSON.stringify(value)}`;
    cfg.compiledStore = value === "yes";
    return undefined;
  },
  compiled_store_max_size: wholeNumber("compiledStoreMaxSize", 1, 65536, "MiB"),
  compiled_store_max_age: wholeNumber("compiledStoreMaxAge", 1, 3650, "days"),
};

export const CONFIG_KEYS: readonly string[] = Object.keys(SETTERS);

// key = value | key = "value"; blanks around `=` and at both ends are allowed, like libvirt's files.
const ASSIGNMENT = /^[ \t]*([A-Za-z0-9_]+)[ \t]*=[ \t]*(?:"([^"]*)"|([^"\s#]*))[ \t]*$/;
const MAX_CONFIG_BYTES = 64 * 1024;

/** Parse config text. `file` only labels errors. Throws ConfigError. */
export function parseConfig(text: string, file: string): Config {
  const cfg: Config = { ...DEFAULT_CONFIG };
  const seen = new Map<string, number>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.replace(/\r$/, "");
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const m = ASSIGNMENT.exec(line);
    if (!m) {
      const key = /^[ \t]*([A-Za-z0-9_]+)[ \t]*=/.exec(line)?.[1] ?? "";
      throw new ConfigError(file, lineNo, key, 'expected key = "value" (one pair of double quotes, nothing after it)');
    }
    const key = m[1]!;
    const value = m[2] ?? m[3] ?? "";
    if (/[\u0000-\u001f\u007f]/.test(value)) throw new ConfigError(file, lineNo, key, "value contains a control character");
    const setter = SETTERS[key];
    if (!setter) throw new ConfigError(file, lineNo, key, `unknown key (known: ${CONFIG_KEYS.join(", ")})`);
    const earlier = seen.get(key);
    if (earlier !== undefined) throw new ConfigError(file, lineNo, key, `set again (first set on line ${earlier})`);
    seen.set(key, lineNo);
    const problem = setter(cfg, value);
    if (problem) throw new ConfigError(file, lineNo, key, problem);
  }
  return cfg;
}

/**
 * The template the installer derives (`layout.derivedTemplate`), when it exists and the config
 * names no `template`, is the default: an installed host confines NVRAM per guest without a
 * config edit.
 */
function withDerivedTemplate(cfg: Config, layout: Layout, text: string): Config {
  if (/^[ \t]*template[ \t]*=/m.test(text)) return cfg;
  return fs.existsSync(layout.host(layout.derivedTemplate)) ? { ...cfg, template: layout.derivedTemplate } : cfg;
}

/**
 * The config in effect for this layout's root (only `root` and `configPath` are read from the
 * layout): defaults when the file does not exist. Throws ConfigError.
 */
export function loadConfig(layout: Layout): Config {
  const file = layout.host(layout.configPath);
  let text: string;
  try {
    const buf = fs.readFileSync(file);
    if (buf.length > MAX_CONFIG_BYTES) throw new ConfigError(layout.configPath, 0, "", `larger than ${MAX_CONFIG_BYTES} bytes`);
    text = buf.toString("utf8");
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return withDerivedTemplate({ ...DEFAULT_CONFIG }, layout, "");
    throw new ConfigError(layout.configPath, 0, "", (err as Error).message);
  }
  return withDerivedTemplate(parseConfig(text, layout.configPath), layout, text);
}

/** The config of `root` and the layout it makes (our locations where the config puts them). Throws ConfigError. */
export function loadLayout(root: string): { config: Config; layout: Layout } {
  const config = loadConfig(new Layout(root));
  return { config, layout: Layout.from(root, config) };
}
