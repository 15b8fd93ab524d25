import { describe, expect, it } from "vitest";
import type { Chardev } from "../../src/domain/model.js";
import { chardevRules as chardevRulesWithOrigin } from "../../src/rules/chardevs.js";
import { baseDomain, ruleContext, expectPathError, withoutOrigins } from "./fixtures.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const chardevRules = withoutOrigins(chardevRulesWithOrigin);

const rulesFor = (...chardevs: Chardev[]) => chardevRules(ruleContext(baseDomain({ devices: { chardevs } })));

describe("chardevRules", () => {
  it("grants file, dev and unix backends rw on their path", () => {
    expect(
      rulesFor(
        { source: "serial 0", type: "file", path: "/var/log/vm1/serial0.log" },
        { source: "parallel 0", type: "dev", path: "/dev/parport0" },
        { source: "channel org.qemu.guest_agent.0", type: "unix", mode: "bind", path: "/run/vm1/qga.sock" },
      ),
    ).toEqual([
      { path: "/var/log/vm1/serial0.log", suffix: "", perms: "rw", source: "serial 0" },
      { path: "/dev/parport0", suffix: "", perms: "rw", source: "parallel 0" },
      { path: "/run/vm1/qga.sock", suffix: "", perms: "rw", source: "channel org.qemu.guest_agent.0" },
    ]);
  });

  it("grants a pipe's .in and .out and, as QEMU's fallback, the path itself", () => {
    expect(rulesFor({ source: "serial 1", type: "pipe", path: "/srv/pipes/vm1" })).toEqual([
      { path: "/srv/pipes/vm1.in", suffix: "", perms: "rw", source: "serial 1" },
      { path: "/srv/pipes/vm1.out", suffix: "", perms: "rw", source: "serial 1" },
      { path: "/srv/pipes/vm1", suffix: "", perms: "rw", source: "serial 1" },
    ]);
  });

  it("grants a chardev's log file rw, also for backends without a path", () => {
    expect(
      rulesFor(
        { source: "serial 0", type: "pty", logFile: "/var/log/libvirt/qemu/vm1-serial0.log" },
        { source: "console 0", type: "file", path: "/srv/console.out", logFile: "/srv/console.log" },
      ),
    ).toEqual([
      { path: "/var/log/libvirt/qemu/vm1-serial0.log", suffix: "", perms: "rw", source: "serial 0 log" },
      { path: "/srv/console.out", suffix: "", perms: "rw", source: "console 0" },
      { path: "/srv/console.log", suffix: "", perms: "rw", source: "console 0 log" },
    ]);
  });

  it("grants nothing for backends that open no host path by name", () => {
    const types = ["pty", "vc", "null", "stdio", "tcp", "udp", "spicevmc", "spiceport", "qemu-vdagent", "nmdm"];
    // A stray path attribute on such a backend must not turn into a rule.
    expect(rulesFor(...types.map((type, i) => ({ source: `serial ${i}`, type, path: "/dev/pts/3" })))).toEqual([]);
  });

  it("leaves an auto-named unix channel (no path) to the runtime family's channel dir", () => {
    expect(rulesFor({ source: "channel org.qemu.guest_agent.0", type: "unix", mode: "bind" })).toEqual([]);
  });

  it.each([
    [{ source: "serial 0", type: "file", path: "serial.log" }, "serial.log", "serial 0"],
    [{ source: "serial 0", type: "pipe", path: "pipes/vm1" }, "pipes/vm1", "serial 0"],
    [{ source: "serial 0", type: "pty", logFile: "log/serial.log" }, "log/serial.log", "serial 0 log"],
    [{ source: "serial 0", type: "unix", path: "" }, "", "serial 0"],
  ])("rejects a relative path, naming the element: %j", (chr, path, element) => {
    expectPathError(() => rulesFor(chr), path, `${element}: path is not absolute`);
  });
});
