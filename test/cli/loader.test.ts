import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testNodeVersion, withTestNode } from "../helpers/node.js";
import { CODE_CACHE_KINDS, OPERATIONS, codeCacheKindOf, operationOf } from "../../src/hook/operations.js";

// The launch chain hooks/qemu → dist/loader.cjs → bundle, run for real from copies of the built
// files (npm run build first), so the caches the loader is asked to write land in a temporary dist.
const REPO = path.resolve(".");

describe("the operation table", () => {
  it("names libvirt's operations the hook acts on, with their sub-operation and code cache", () => {
    expect(OPERATIONS).toEqual({
      prepare: { subOperation: "begin", codeCache: "sync" },
      start: { subOperation: "begin", codeCache: "sync" },
      started: { subOperation: "begin", codeCache: "started" },
      stopped: { subOperation: "end", codeCache: "other" },
      release: { subOperation: "end", codeCache: "release" },
      reconnect: { subOperation: "begin", codeCache: "sync" },
    });
    expect([...new Set(Object.values(OPERATIONS).map((o) => o.codeCache))].sort()).toEqual([...CODE_CACHE_KINDS].sort());
  });

  it.each([
    ["prepare", "prepare", "sync"],
    ["reconnect", "reconnect", "sync"],
    ["stopped", "stopped", "other"],
    ["migrate", undefined, "other"],
    ["restore", undefined, "other"],
    ["attach", undefined, "other"],
    ["constructor", undefined, "other"],
    ["__proto__", undefined, "other"],
    ["", undefined, "other"],
  ])("%s is operation %s with code cache %s", (op, operation, kind) => {
    expect(operationOf(op)).toBe(operation);
    expect(codeCacheKindOf(op)).toBe(kind);
  });
});

describe("hooks/qemu and the loader", () => {
  let dir: string;
  const hook = () => path.join(dir, "etc/libvirt/hooks/qemu");
  const dist = () => path.join(dir, "etc/libvirt/dist");
  const caches = () => fs.readdirSync(dist()).filter((f) => f.endsWith(".v8cache"));
  const run = (op: string) =>
    spawnSync(hook(), ["vm1", op, "begin", "-"], {
      input: "<domain/>",
      env: { LC_ALL: "C", VIRT_AA_HOOK_WRITE_CODE_CACHE: "1" },
      cwd: "/",
      encoding: "utf8",
    });

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-loader-"));
    fs.mkdirSync(path.dirname(hook()), { recursive: true });
    fs.mkdirSync(dist(), { recursive: true });
    fs.mkdirSync(path.join(dir, "var/log/libvirt"), { recursive: true });
    fs.writeFileSync(hook(), withTestNode(fs.readFileSync(path.join(REPO, "hooks/qemu"), "utf8")));
    fs.chmodSync(hook(), 0o755);
    for (const f of ["virt-aa-hook.cjs", "loader.cjs"]) fs.copyFileSync(path.join(REPO, "dist", f), path.join(dist(), f));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each(["prepare", "start", "reconnect", "started", "stopped", "release", "migrate", "constructor"])(
    "%s is compiled with the code cache of its kind",
    (op) => {
      for (const f of caches()) fs.rmSync(path.join(dist(), f));
      const r = run(op);
      // Only the cache's name matters here; most of these fail on "<domain/>" after the loader chose.
      expect(r.stdout).toBe("");
      const id = /\/\/# virt-aa-hook-build ([0-9a-f]{64})\n$/.exec(fs.readFileSync(path.join(dist(), "virt-aa-hook.cjs"), "utf8"))![1]!.slice(0, 24);
      expect(caches()).toEqual([`virt-aa-hook.cjs.${id}-${testNodeVersion()}-${process.arch}.${codeCacheKindOf(op)}.v8cache`]);
    },
  );

  it("without a loader beside the bundle, runs the bundle directly (no code cache)", () => {
    for (const f of caches()) fs.rmSync(path.join(dist(), f));
    fs.rmSync(path.join(dist(), "loader.cjs"));
    const r = run("migrate");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(caches()).toEqual([]);
    expect(fs.readFileSync(path.join(dir, "var/log/libvirt/virt-aa-hook.log"), "utf8")).toMatch(/ guest="vm1" op="migrate" exit=0 .*result="nothing to do"\n$/);
  });
});
