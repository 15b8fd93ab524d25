import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { detectEnvironment, loadedProfiles, Parser, parserMessage, removeCacheEntries } from "../../src/apparmor/index.js";
import { DEFAULT_CONFIG, type Config } from "../../src/config.js";
import { HostError } from "../../src/errors.js";
import { Layout } from "../../src/layout.js";
import { FAKE_SECURITYFS, FEATURES, makeTestRoot, PARSER, type TestRoot } from "../lifecycle/fixture.js";

const UUID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const NAME = `libvirt-${UUID}`;
const PROFILE = `/etc/apparmor.d/libvirt/${NAME}`;

let t: TestRoot;
const config = (over: Partial<Config> = {}): Config => ({ ...DEFAULT_CONFIG, subdomainfs: FAKE_SECURITYFS, featuresFile: FEATURES, ...over });
/** The layout a hook would build from that config. */
const layoutFor = (over: Partial<Config> = {}): Layout => Layout.from(t.root, config(over));

function writeProfile(filesText: string): void {
  fs.writeFileSync(
    t.at(PROFILE),
    `#include <tunables/global>\nprofile ${NAME} flags=(attach_disconnected) {\n  #include <abstractions/libvirt-qemu>\n  #include <libvirt/${NAME}.files>\n}\n`,
  );
  fs.writeFileSync(t.at(`${PROFILE}.files`), filesText);
}

beforeEach(() => {
  t = makeTestRoot("vaah-parser-");
});
afterEach(() => t.remove());

describe("environment detection", () => {
  it("targets the configured subdomainfs under the root, with the configured features", () => {
    const env = detectEnvironment(layoutFor());
    expect(env.kernelEnabled).toBe(false);
    expect(env.target).toEqual({ kind: "subdomainfs", dir: t.at(FAKE_SECURITYFS), passDir: true });
    expect(env.featuresFile).toBe(t.at(FEATURES));
    expect(env.parserPresent).toBe(true);
    expect(env.baseDir).toBe(t.at("/etc/apparmor.d"));
    expect(env.cacheDir).toBe(t.at("/var/cache/apparmor/virt-aa-hook"));
  });

  it("has no load target without kernel AppArmor and without subdomainfs; falls back to the shipped features", () => {
    const env = detectEnvironment(layoutFor({ subdomainfs: "", featuresFile: "" }));
    expect(env.target).toBeUndefined();
    expect(env.featuresFile).toBe(t.at(FEATURES));
  });

  it("sees kernel AppArmor when enabled=Y and securityfs exists (under the root)", () => {
    fs.mkdirSync(t.at("/sys/module/apparmor/parameters"), { recursive: true });
    fs.writeFileSync(t.at("/sys/module/apparmor/parameters/enabled"), "Y\n");
    expect(detectEnvironment(layoutFor({ subdomainfs: "" })).kernelEnabled).toBe(false); // no securityfs yet
    fs.mkdirSync(t.at("/sys/kernel/security/apparmor"), { recursive: true });
    const env = detectEnvironment(layoutFor({ subdomainfs: "", featuresFile: "" }));
    expect(env.kernelEnabled).toBe(true);
    // Not the real root: the mapped securityfs must be named explicitly, never the machine's.
    expect(env.target).toEqual({ kind: "kernel", dir: t.at("/sys/kernel/security/apparmor"), passDir: true });
    expect(env.featuresFile).toBeUndefined();
    fs.writeFileSync(t.at("/sys/module/apparmor/parameters/enabled"), "N\n");
    expect(detectEnvironment(layoutFor({ subdomainfs: "" })).kernelEnabled).toBe(false);
  });

  it("reports a missing parser", () => {
    expect(detectEnvironment(layoutFor({ parser: "/nonexistent/apparmor_parser" })).parserPresent).toBe(false);
  });
});

describe("Parser with the real apparmor_parser", () => {
  it("validates a good profile and rejects a bad one, quoting the parser", async () => {
    const p = new Parser(PARSER, detectEnvironment(layoutFor()));
    writeProfile('  "/var/lib/libvirt/images/a.qcow2" rwk,\n');
    await p.validate(t.at(PROFILE), NAME);
    writeProfile("  garbage {\n");
    const err = await p.validate(t.at(PROFILE), NAME).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostError);
    expect((err as Error).message).toMatch(
      new RegExp(`^cannot compile ${NAME}: AppArmor parser error for .*${NAME}\\.files at line 1: syntax error, unexpected TOK_OPEN, expecting TOK_MODE \\(exit status 1\\)$`),
    );
  });

  it("loads into the subdomainfs, writes the cache, and unloads by name", async () => {
    const env = detectEnvironment(layoutFor());
    const p = new Parser(PARSER, env);
    writeProfile('  "/var/lib/libvirt/images/a.qcow2" rwk,\n');
    await p.load(t.at(PROFILE), NAME, { skipReadCache: false, complain: false });
    const replaced = fs.readFileSync(t.at(`${FAKE_SECURITYFS}/.replace`));
    expect(replaced.length).toBeGreaterThan(1000);
    expect(replaced.includes(Buffer.from(NAME))).toBe(true);
    const cached = fs.readdirSync(env.cacheDir).flatMap((d) => fs.readdirSync(`${env.cacheDir}/${d}`));
    expect(cached).toContain(NAME);

    expect(await p.unload(NAME)).toBe("removed");
    expect(fs.readFileSync(t.at(`${FAKE_SECURITYFS}/.remove`)).toString("latin1")).toBe(`${NAME}\0`);
  });

  it("fails a load when the target has no .replace (exit 254), quoting the parser", async () => {
    fs.rmSync(t.at(`${FAKE_SECURITYFS}/.replace`));
    const p = new Parser(PARSER, detectEnvironment(layoutFor()));
    writeProfile('  "/a" r,\n');
    await expect(p.load(t.at(PROFILE), NAME, { skipReadCache: true, complain: false })).rejects.toThrow(
      `cannot load ${NAME}: ${PARSER}: Unable to replace "${NAME}".  Profile doesn't exist (exit status 254)`,
    );
  });

  it("treats unloading a profile that is not loaded as done", async () => {
    fs.rmSync(t.at(`${FAKE_SECURITYFS}/.remove`));
    const p = new Parser(PARSER, detectEnvironment(layoutFor()));
    expect(await p.unload(NAME)).toBe("not-loaded");
  });

  it("compiles staged includes before the base (-I stage), so a new .files is tested before it replaces the old", async () => {
    const p = new Parser(PARSER, detectEnvironment(layoutFor()));
    writeProfile("  garbage {\n"); // what is on disk is broken...
    const stage = t.at("/etc/apparmor.d/libvirt/.stage");
    fs.mkdirSync(`${stage}/libvirt`, { recursive: true });
    fs.writeFileSync(`${stage}/libvirt/${NAME}.files`, '  "/b" r,\n'); // ...the staged one is fine
    await p.validate(t.at(PROFILE), NAME, { stageDir: stage });
    fs.writeFileSync(`${stage}/libvirt/${NAME}.files`, "  bad {\n");
    const err = (await p
      .validate(t.at(PROFILE), NAME, { stageDir: stage, stageShownAs: { real: `${stage}/libvirt`, host: "/etc/apparmor.d/libvirt" } })
      .catch((e: unknown) => e)) as Error;
    // The message names the file the admin knows, not the staging directory.
    expect(err.message).toContain(`in profile /etc/apparmor.d/libvirt/${NAME}.files at line 1`);
    expect(err.message).not.toContain(".stage");
  });

  it("refuses to run a parser that is not there", async () => {
    const p = new Parser("/nonexistent/apparmor_parser", detectEnvironment(layoutFor({ parser: "/nonexistent/apparmor_parser" })));
    await expect(p.validate(t.at(PROFILE), NAME)).rejects.toThrow("cannot run /nonexistent/apparmor_parser: not an executable file");
  });
});

describe("loaded profiles and cache entries", () => {
  it("reads name and mode from <securityfs>/profiles; unknown without the file", () => {
    const dir = t.at(FAKE_SECURITYFS);
    expect(loadedProfiles(dir)).toBeUndefined();
    fs.writeFileSync(`${dir}/profiles`, `${NAME} (complain)\n/usr/sbin/libvirtd (enforce)\nweird line\n`);
    expect(loadedProfiles(dir)).toEqual(new Map([[NAME, "complain"], ["/usr/sbin/libvirtd", "enforce"]]));
    const p = new Parser(PARSER, detectEnvironment(layoutFor()));
    expect(p.loadedMode(NAME)).toBe("complain");
    expect(p.loadedMode("libvirt-other")).toBeNull();
  });

  it("removes exactly the profile's cache entries and parser temporaries", () => {
    const cache = t.at("/var/cache/apparmor/virt-aa-hook");
    fs.mkdirSync(`${cache}/abc.0`, { recursive: true });
    for (const f of [NAME, `${NAME}-Xy12Ab`, `${NAME}x`, "libvirt-other", ".features"]) fs.writeFileSync(`${cache}/abc.0/${f}`, "");
    expect(removeCacheEntries(cache, NAME).sort()).toEqual([`${cache}/abc.0/${NAME}`, `${cache}/abc.0/${NAME}-Xy12Ab`]);
    expect(fs.readdirSync(`${cache}/abc.0`).sort()).toEqual([".features", `${NAME}x`, "libvirt-other"]);
  });

  it("keeps only the parser's error lines, once, with the exit status", () => {
    const msg = parserMessage({
      exitCode: 1,
      stdout: "",
      stderr: "Cache read/write disabled: interface file missing.\nAppArmor parser error for x: boom\nAppArmor parser error for x: boom",
    });
    expect(msg).toBe("AppArmor parser error for x: boom (exit status 1)");
  });
});
