import fs from "node:fs";
import { HostError } from "../errors.js";
import type { ApparmorEnvironment } from "./environment.js";
import { parserFailed, parserMessage, runParser, type ParserResult } from "./runner.js";
import { profileMode } from "./loaded.js";

/**
 * The private vocabulary between the hook and apparmor_parser: validate, load, unload, is-loaded.
 * Every call names its include base (`--base`) so `--root DIR` compiles against DIR's
 * tunables/abstractions, and every failure is a HostError that quotes the parser.
 */
export interface CompileOptions {
  /** Real path of a staging dir searched before the base for includes (`-I`): new .files under test. */
  stageDir?: string;
  /** How the admin sees the staging dir's `libvirt/` in messages (host profiles dir). */
  stageShownAs?: { real: string; host: string };
}

export interface LoadOptions extends CompileOptions {
  /** Content changed since the cache was written: do not trust it (`-T`). */
  skipReadCache: boolean;
  /** Load in complain mode (`-C`). */
  complain: boolean;
}

export class Parser {
  constructor(
    readonly parserPath: string,
    readonly env: ApparmorEnvironment,
    /** Kill a parser run after this long (config `parser_timeout`); runner.ts's default when absent. */
    readonly timeoutMs?: number,
  ) {}

  /** Compile without loading or caching: proves the profile (with staged includes) is valid. */
  async validate(profile: string, what: string, opts: CompileOptions = {}): Promise<void> {
    const r = await this.run(["-Q", "-K", ...this.commonArgs(opts), profile]);
    this.check(r, `cannot compile ${what}`, opts);
  }

  /**
   * Compile without loading or caching and write the compiled policy to `outFile` (`-Q -K -o`):
   * the compiled-policy store's one compile per miss (store-load.ts). Failures say "cannot load"
   * as load() does: the caller was loading.
   */
  async compileTo(profile: string, what: string, outFile: string, opts: CompileOptions & { complain: boolean }): Promise<void> {
    const args = ["-Q", "-K", "-o", outFile];
    if (opts.complain) args.push("-C");
    const r = await this.run([...args, ...this.commonArgs(opts), profile]);
    this.check(r, `cannot load ${what}`, opts);
  }

  /** Load or replace (`-r`) with the cache; recompiles only if the cache is stale or -T is asked. */
  async load(profile: string, what: string, opts: LoadOptions): Promise<void> {
    const target = this.env.target;
    if (!target) throw new HostError(`cannot load ${what}: AppArmor is not enabled in this kernel`);
    this.ensureCacheDir();
    const args = ["-r", "-W", "-L", this.env.cacheDir];
    if (opts.skipReadCache) args.push("-T");
    if (opts.complain) args.push("-C");
    if (target.passDir) args.push("--subdomainfs", target.dir);
    const r = await this.run([...args, ...this.commonArgs(opts), profile]);
    this.check(r, `cannot load ${what}`, opts);
  }

  /**
   * Unload a profile by name. The parser only needs the name, so it is fed a stub on stdin: this
   * works even when the profile file is gone or broken. "Not loaded" counts as done.
   */
  async unload(profileName: string): Promise<"removed" | "not-loaded"> {
    const target = this.env.target;
    if (!target) throw new HostError(`cannot unload ${profileName}: AppArmor is not enabled in this kernel`);
    const args = ["-R"];
    if (target.passDir) args.push("--subdomainfs", target.dir);
    if (this.env.featuresFile) args.push("-M", this.env.featuresFile);
    const r = await this.run(args, { input: `profile ${profileName} {}\n` });
    if (!parserFailed(r)) return "removed";
    if (/doesn't exist/.test(r.stderr)) return "not-loaded";
    throw new HostError(`cannot unload ${profileName}: ${parserMessage(r)}`);
  }

  /** Mode when loaded, null when not loaded, undefined when the load target cannot say. */
  loadedMode(profileName: string): string | null | undefined {
    const target = this.env.target;
    if (!target) return null;
    return profileMode(target.dir, profileName);
  }

  private commonArgs(opts: CompileOptions): string[] {
    const args: string[] = [];
    if (this.env.featuresFile) args.push("-M", this.env.featuresFile);
    if (opts.stageDir) args.push("-I", opts.stageDir);
    args.push("--base", this.env.baseDir);
    return args;
  }

  private async run(args: string[], extra: { input?: string } = {}): Promise<ParserResult> {
    if (!this.env.parserPresent) throw new HostError(`cannot run ${this.parserPath}: not an executable file`);
    return runParser(this.parserPath, args, this.timeoutMs === undefined ? extra : { ...extra, timeoutMs: this.timeoutMs });
  }

  private check(r: ParserResult, what: string, opts: CompileOptions): void {
    if (!parserFailed(r)) return;
    let msg = parserMessage(r);
    // Name the files the admin knows, not our staging directory.
    if (opts.stageShownAs) msg = msg.split(opts.stageShownAs.real).join(opts.stageShownAs.host);
    throw new HostError(`${what}: ${msg}`);
  }

  private ensureCacheDir(): void {
    try {
      fs.mkdirSync(this.env.cacheDir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new HostError(`cannot create the parser cache ${this.env.cacheDir}: ${(err as Error).message}`);
    }
  }
}
