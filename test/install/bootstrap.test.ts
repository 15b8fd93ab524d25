/**
 * install.sh and uninstall.sh are bootstraps (install/bootstrap.sh): they find a node that can run
 * the source tree's bundle and hand over to `virt-aa-hook install` / `uninstall`. What they refuse
 * themselves, before any node code runs, and what the bundle says when the host is not installed.
 */
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hostRoot, runScript, sourceTree, tree } from "./helpers.js";

let src: string;
let root: string;
beforeEach(() => {
  src = sourceTree();
  root = hostRoot();
});
afterEach(() => {
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
});

describe("the bootstraps", () => {
  it("refuse a source tree without its bundle, naming the fix", () => {
    fs.rmSync(path.join(src, "dist"), { recursive: true });
    const before = tree(root, { dirMtimes: true });
    const r = runScript("install.sh", src, ["--root", root, "--node", "/usr/bin/node", "--libvirt-version", "9.0.0"]);
    expect(r).toEqual({
      status: 1,
      stdout: "",
      stderr: `virt-aa-hook install: error: ${fs.realpathSync(src)}/dist/virt-aa-hook.cjs: missing from the source tree (run 'npm run build' for dist/)\n`,
    });
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });

  it("refuse a node that is not an executable file, and find none on an empty PATH", () => {
    expect(runScript("install.sh", src, ["--root", root, "--node", "/nonexistent/node"]).stderr).toBe(
      "virt-aa-hook install: error: --node /nonexistent/node: not an executable file\n",
    );
    expect(runScript("uninstall.sh", src, ["--root", root], { PATH: "/nonexistent" })).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook uninstall: error: no node on PATH: pass --node /path/to/node (Node >= 18.19)\n",
    });
  });

  it("uninstall on a host install never touched says so and changes nothing", () => {
    const before = tree(root, { dirMtimes: true });
    expect(runScript("uninstall.sh", src, ["--root", root])).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook uninstall: error: /var/lib/virt-aa-hook/install-manifest: not found: virt-aa-hook was not installed by install.sh here\n",
    });
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });
});
