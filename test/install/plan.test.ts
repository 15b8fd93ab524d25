/**
 * The installer's planner on an in-memory host: what it decides for each situation, exactly, and
 * that a plan applied to the host it was made for plans nothing the second time. No file is written.
 */
import { describe, expect, it } from "vitest";
import { describeStep, planInstall, planUninstall, Refusal, withoutOurBlock, type HostView, type Step, type Wanted } from "../../src/install/plan.js";

type Entry = { kind: "file"; mode: number; content: Buffer } | { kind: "link"; target: string } | { kind: "dir" };

class MemoryHost implements HostView {
  readonly nodes = new Map<string, Entry>([["/", { kind: "dir" }]]);
  constructor(files: Record<string, string | { text: string; mode: number } | { link: string }> = {}) {
    for (const [p, v] of Object.entries(files)) {
      this.mkdirs(p.slice(0, p.lastIndexOf("/")) || "/");
      if (typeof v === "string") this.nodes.set(p, { kind: "file", mode: 0o644, content: Buffer.from(v) });
      else if ("link" in v) this.nodes.set(p, { kind: "link", target: v.link });
      else this.nodes.set(p, { kind: "file", mode: v.mode, content: Buffer.from(v.text) });
    }
  }
  mkdirs(p: string): void {
    for (let d = p; d !== "/" && !this.nodes.has(d); d = d.slice(0, d.lastIndexOf("/")) || "/") this.nodes.set(d, { kind: "dir" });
  }
  stat(p: string) {
    const n = this.nodes.get(p);
    return n && { kind: n.kind, mode: n.kind === "file" ? n.mode : n.kind === "dir" ? 0o755 : 0o777 };
  }
  read(p: string): Buffer {
    const n = this.nodes.get(p);
    if (n?.kind !== "file") throw new Error(`not a file: ${p}`);
    return n.content;
  }
  readlink(p: string): string {
    const n = this.nodes.get(p);
    if (n?.kind !== "link") throw new Error(`not a link: ${p}`);
    return n.target;
  }
  list(p: string): string[] {
    const prefix = p === "/" ? "/" : `${p}/`;
    return [...this.nodes.keys()].filter((k) => k.startsWith(prefix) && k !== p && !k.slice(prefix.length).includes("/")).map((k) => k.slice(prefix.length));
  }
  text(p: string): string {
    return this.read(p).toString("utf8");
  }
  /** What applySteps does, in memory. */
  apply(steps: Step[], manifest: string): void {
    const pending: string[] = [];
    const record = (e: string) => {
      const m = this.nodes.get(manifest);
      if (m?.kind === "file") m.content = Buffer.concat([m.content, Buffer.from(`${e}\n`)]);
      else pending.push(e);
    };
    for (const s of steps) {
      switch (s.do) {
        case "mkdir":
          this.nodes.set(s.path, { kind: "dir" });
          record(`created-dir ${s.path}`);
          break;
        case "manifest":
          if (!this.nodes.has(manifest)) this.nodes.set(manifest, { kind: "file", mode: 0o644, content: Buffer.from(pending.map((e) => `${e}\n`).join("")) });
          break;
        case "record":
          record(s.entry);
          break;
        case "backup":
          this.nodes.set(s.to, { ...this.nodes.get(s.path)! });
          record(`modified ${s.path}`);
          break;
        case "write":
        case "unblock":
          this.nodes.set(s.path, { kind: "file", mode: s.mode, content: s.content });
          break;
        case "pristine":
          this.mkdirs(s.copy.slice(0, s.copy.lastIndexOf("/")));
          this.nodes.set(s.copy, { kind: "file", mode: 0o644, content: s.content });
          break;
        case "link":
          this.nodes.set(s.path, { kind: "link", target: s.target });
          break;
        case "move":
          this.nodes.set(s.to, this.nodes.get(s.from)!);
          this.nodes.delete(s.from);
          break;
        case "remove":
        case "rmdir":
          this.nodes.delete(s.path);
          break;
        case "remove-tree":
          for (const p of s.paths) for (const k of [...this.nodes.keys()]) if (k === p || k.startsWith(`${p}/`)) this.nodes.delete(k);
          break;
        case "restore":
          this.nodes.set(s.path, { ...this.nodes.get(s.from)! });
          break;
        case "note":
          break;
      }
    }
  }
  snapshot(): string {
    return JSON.stringify([...this.nodes.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  }
}

const LOCAL = "/etc/apparmor.d/local/usr.sbin.libvirtd";
const put = (p: string, text: string, mode = 0o644) => ({ path: p, content: Buffer.from(text), mode });

function wanted(over: Partial<Wanted> = {}, hook: Partial<Wanted["hook"]> = {}): Wanted {
  return {
    stateDir: "/var/lib/vah",
    manifest: "/var/lib/vah/install-manifest",
    backupDir: "/var/lib/vah/backup",
    pristineDir: "/var/lib/vah/pristine",
    lib: [put("/usr/lib/vah/bundle.cjs", "bundle"), put("/usr/lib/vah/qemu-hook", "launcher", 0o755), put("/usr/lib/vah/qemu-wrapper", "wrapper", 0o755)],
    wrapperBin: "/usr/lib/vah/bin",
    emulators: ["qemu-system-x86_64"],
    emulatorDir: "/usr/bin",
    config: put("/etc/libvirt/vah.conf", 'attach = "wrapper"\n'),
    libvirtFallbacks: [put("/etc/apparmor.d/libvirt/TEMPLATE.qemu", "template")],
    derived: [put("/usr/sbin/vah", "#!/bin/sh\n# virt-aa-hook command\n", 0o755)],
    apparmor: [put(LOCAL, "# site rules\n# BEGIN virt-aa-hook\nours\n# END virt-aa-hook\n")],
    hook: {
      dirs: true,
      libvirtVersion: "9.0.0",
      launcher: "/usr/lib/vah/qemu-hook",
      dLink: "/etc/libvirt/hooks/qemu.d/vah",
      main: "/etc/libvirt/hooks/qemu",
      chained: "/etc/libvirt/hooks/qemu.chained",
      chain: Buffer.from("#!/bin/sh\n# virt-aa-hook chain\n"),
      ...hook,
    },
    command: { path: "/usr/sbin/vah", mark: /^# virt-aa-hook command/m },
    ...over,
  };
}

const said = (steps: Step[], dry = false) => steps.map((s) => describeStep(s, dry)).filter((l) => l !== undefined);
const records = (steps: Step[]) => steps.flatMap((s) => (s.do === "record" ? [s.entry] : s.do === "mkdir" ? [`created-dir ${s.path}`] : s.do === "backup" ? [`modified ${s.path}`] : []));

/** A host with libvirt's template, libvirtd's local override and /usr/bin, /usr/sbin already there. */
const libvirtHost = () => new MemoryHost({ "/etc/apparmor.d/libvirt/TEMPLATE.qemu": "libvirt's", [LOCAL]: "# site rules\n", "/usr/bin/qemu-system-x86_64": { text: "", mode: 0o755 }, "/usr/sbin/other": "" });

describe("planInstall", () => {
  it("on a fresh host: directories, files, backups and links in order, recorded as they happen", () => {
    const host = libvirtHost();
    const plan = planInstall(host, wanted());
    expect(said(plan.steps)).toEqual([
      "create directory /var",
      "create directory /var/lib",
      "create directory /var/lib/vah",
      "create directory /usr/lib",
      "create directory /usr/lib/vah",
      "install /usr/lib/vah/bundle.cjs (mode 0644)",
      "install /usr/lib/vah/qemu-hook (mode 0755)",
      "install /usr/lib/vah/qemu-wrapper (mode 0755)",
      "create directory /usr/lib/vah/bin",
      "link /usr/lib/vah/bin/qemu-system-x86_64 -> ../qemu-wrapper",
      "create directory /etc/libvirt",
      "install /etc/libvirt/vah.conf (mode 0644)",
      "kept existing /etc/apparmor.d/libvirt/TEMPLATE.qemu",
      "install /usr/sbin/vah (mode 0755)",
      "create directory /var/lib/vah/backup",
      "create directory /var/lib/vah/backup/etc",
      "create directory /var/lib/vah/backup/etc/apparmor.d",
      "create directory /var/lib/vah/backup/etc/apparmor.d/local",
      `back up ${LOCAL} to /var/lib/vah/backup${LOCAL}`,
      `install ${LOCAL} (mode 0644)`,
      "create directory /etc/libvirt/hooks",
      "create directory /etc/libvirt/hooks/qemu.d",
      "link /etc/libvirt/hooks/qemu.d/vah -> /usr/lib/vah/qemu-hook",
    ]);
    expect(said(plan.steps, true)[0]).toBe("would create directory /var");
    expect(records(plan.steps)).toContain("created /etc/libvirt/vah.conf");
    expect(plan).toMatchObject({ changed: true, dropinChanged: false, configWritten: true });
    expect(plan.steps.filter((s) => s.do === "pristine").map((s) => s.do === "pristine" && s.copy)).toEqual(["/var/lib/vah/pristine/etc/libvirt/vah.conf"]);

    host.apply(plan.steps, "/var/lib/vah/install-manifest");
    expect(host.text("/var/lib/vah/install-manifest").split("\n").slice(0, 6)).toEqual([
      "created-dir /var",
      "created-dir /var/lib",
      "created-dir /var/lib/vah",
      "created-dir /usr/lib",
      "created-dir /usr/lib/vah",
      "created /usr/lib/vah/bundle.cjs",
    ]);
    // Applied, the same wanted state plans nothing (the manifest step is not an action).
    const again = planInstall(host, wanted());
    expect(again.changed).toBe(false);
    expect(said(again.steps)).toEqual(["kept existing /etc/apparmor.d/libvirt/TEMPLATE.qemu"]);
  });

  it("upgrades a changed file in place without a second backup; a wrong mode alone is a change", () => {
    const host = libvirtHost();
    host.apply(planInstall(host, wanted()).steps, "/var/lib/vah/install-manifest");
    const upgraded = wanted({ apparmor: [put(LOCAL, "# site rules\nnew block\n")], lib: [put("/usr/lib/vah/bundle.cjs", "bundle"), put("/usr/lib/vah/qemu-hook", "launcher", 0o750), put("/usr/lib/vah/qemu-wrapper", "wrapper", 0o755)] });
    expect(said(planInstall(host, upgraded).steps)).toEqual([
      "install /usr/lib/vah/qemu-hook (mode 0750)",
      "kept existing /etc/apparmor.d/libvirt/TEMPLATE.qemu",
      `install ${LOCAL} (mode 0644)`,
    ]);
  });

  it("keeps what is there where it installs only if absent, and says so unless it is its own", () => {
    const host = libvirtHost();
    host.nodes.set("/etc/libvirt", { kind: "dir" });
    host.nodes.set("/etc/libvirt/vah.conf", { kind: "file", mode: 0o600, content: Buffer.from("mode = x\n") });
    const plan = planInstall(host, wanted());
    expect(said(plan.steps)).toContain("kept existing /etc/libvirt/vah.conf");
    expect(plan.configWritten).toBe(false);
  });

  it("the drop-in: installed and reported as changed only when it differs", () => {
    const host = libvirtHost();
    const w = wanted({ dropin: put("/etc/systemd/system/libvirtd.service.d/vah.conf", "[Unit]\n") });
    const plan = planInstall(host, w);
    expect(plan.dropinChanged).toBe(true);
    host.apply(plan.steps, w.manifest);
    expect(planInstall(host, w).dropinChanged).toBe(false);
  });

  it("refuses, before any step, a command on PATH or a qemu.d hook that is someone else's", () => {
    expect(() => planInstall(new MemoryHost({ "/usr/sbin/vah": "#!/bin/sh\necho mine\n" }), wanted())).toThrow(
      new Refusal("/usr/sbin/vah exists and is not virt-aa-hook's: move it away and run again"),
    );
    expect(() => planInstall(new MemoryHost({ "/etc/libvirt/hooks/qemu.d/vah": { link: "/opt/other" } }), wanted())).toThrow(
      new Refusal("/etc/libvirt/hooks/qemu.d/vah exists and is not virt-aa-hook's: move it away and run again"),
    );
  });

  it("libvirt >= 6.5 leaves a foreign main hook where it is and says libvirt runs both", () => {
    const plan = planInstall(new MemoryHost({ "/etc/libvirt/hooks/qemu": "#!/bin/sh\n" }), wanted());
    expect(said(plan.steps).at(-1)).toBe("kept /etc/libvirt/hooks/qemu (not ours): libvirt 9.0.0 runs it, then /etc/libvirt/hooks/qemu.d/vah");
  });

  it("libvirt < 6.5: links the main hook, or moves a foreign one aside and chains it (refused when the aside name is taken)", () => {
    const old = wanted({}, { dirs: false, libvirtVersion: "6.4.0" });
    expect(said(planInstall(new MemoryHost(), old).steps).at(-1)).toBe("link /etc/libvirt/hooks/qemu -> /usr/lib/vah/qemu-hook");

    const host = new MemoryHost({ "/etc/libvirt/hooks/qemu": { text: "#!/bin/sh\necho foreign\n", mode: 0o700 } });
    const plan = planInstall(host, old);
    expect(said(plan.steps).slice(-2)).toEqual([
      "move /etc/libvirt/hooks/qemu (not ours) to /etc/libvirt/hooks/qemu.chained; /etc/libvirt/hooks/qemu now runs it, then virt-aa-hook",
      "install /etc/libvirt/hooks/qemu (mode 0755)",
    ]);
    expect(records(plan.steps).slice(-2)).toEqual(["moved /etc/libvirt/hooks/qemu /etc/libvirt/hooks/qemu.chained", "created /etc/libvirt/hooks/qemu"]);
    host.apply(plan.steps, old.manifest);
    expect(planInstall(host, old).changed).toBe(false);

    expect(() => planInstall(new MemoryHost({ "/etc/libvirt/hooks/qemu": "x", "/etc/libvirt/hooks/qemu.chained": "y" }), old)).toThrow(
      new Refusal("/etc/libvirt/hooks/qemu.chained already exists: cannot move /etc/libvirt/hooks/qemu there"),
    );
  });

  it("warns when there is no emulator to link", () => {
    expect(said(planInstall(new MemoryHost(), wanted({ emulators: [] })).steps)).toContain(
      "warning: no QEMU emulator in /usr/bin: no wrapper links made (run again after installing QEMU)",
    );
  });
});

describe("planUninstall", () => {
  const paths = {
    stateDir: "/var/lib/vah",
    manifest: "/var/lib/vah/install-manifest",
    backupDir: "/var/lib/vah/backup",
    pristineDir: "/var/lib/vah/pristine",
    libvirtdLocal: LOCAL,
    dropin: "/etc/systemd/system/libvirtd.service.d/vah.conf",
    runtimeDirs: ["/run/vah"],
    diversions: "/var/lib/dpkg/diversions",
    divertPackage: "virt-aa-hook",
  };

  it("undoes an install exactly, last entry first", () => {
    for (const w of [wanted(), wanted({}, { dirs: false, libvirtVersion: "6.4.0" })]) {
      const host = libvirtHost();
      host.mkdirs("/etc/libvirt/hooks");
      host.mkdirs("/run");
      host.nodes.set("/etc/libvirt/hooks/qemu", { kind: "file", mode: 0o700, content: Buffer.from("#!/bin/sh\n") });
      const before = host.snapshot();
      host.apply(planInstall(host, w).steps, w.manifest);
      host.mkdirs("/run/vah/locks");
      const plan = planUninstall(host, paths);
      host.apply(plan.steps, w.manifest);
      expect(host.snapshot()).toBe(before);
    }
  });

  it("keeps an edited config, takes only our block out of an edited local override", () => {
    const host = libvirtHost();
    const w = wanted();
    host.apply(planInstall(host, w).steps, w.manifest);
    host.nodes.set("/etc/libvirt/vah.conf", { kind: "file", mode: 0o644, content: Buffer.from("edited\n") });
    host.nodes.set(LOCAL, { kind: "file", mode: 0o640, content: Buffer.from(`${host.text(LOCAL)}/srv/extra r,\n`) });
    const plan = planUninstall(host, paths);
    expect(said(plan.steps)).toEqual([
      "remove /etc/libvirt/hooks/qemu.d/vah",
      "remove directory /etc/libvirt/hooks/qemu.d",
      "remove directory /etc/libvirt/hooks",
      `remove the virt-aa-hook block from ${LOCAL} (keeping lines added since install)`,
      "remove /usr/sbin/vah",
      "kept /etc/libvirt/vah.conf: edited since install",
      "kept /etc/libvirt: not empty",
      "remove /usr/lib/vah/bin/qemu-system-x86_64",
      "remove directory /usr/lib/vah/bin",
      "remove /usr/lib/vah/qemu-wrapper",
      "remove /usr/lib/vah/qemu-hook",
      "remove /usr/lib/vah/bundle.cjs",
      "remove directory /usr/lib/vah",
      "remove directory /usr/lib",
      "remove /var/lib/vah",
      "remove directory /var/lib",
      "remove directory /var",
    ]);
    host.apply(plan.steps, w.manifest);
    expect(host.text(LOCAL)).toBe("# site rules\n/srv/extra r,\n");
    expect(host.stat(LOCAL)?.mode).toBe(0o640);
  });

  it("a diversion: removed with dpkg-divert after our link is gone; kept as it is when dpkg no longer records ours; refused while something else is in its place", () => {
    const H = "/usr/lib/libvirt/virt-aa-helper";
    const R = `${H}.real`;
    const manifest = `created-dir /var/lib/vah\ndiverted ${H} ${R}\ncreated ${H}\n`;
    const host = (diversions: string, atH: { link: string } | string) =>
      new MemoryHost({ "/var/lib/vah/install-manifest": manifest, "/var/lib/dpkg/diversions": diversions, [R]: "libvirt's", [H]: atH });
    const ours = `${H}\n${R}\nvirt-aa-hook\n`;
    expect(said(planUninstall(host(ours, { link: "/usr/lib/vah/virt-aa-helper" }), paths).steps)).toEqual([
      `remove ${H}`,
      `remove the diversion of ${H}: ${R} back to ${H} (dpkg-divert --package virt-aa-hook --rename --remove)`,
      "remove /var/lib/vah",
    ]);
    expect(said(planUninstall(host(`${H}\n${R}\n:\n`, { link: "/usr/lib/vah/virt-aa-helper" }), paths).steps)).toEqual([
      `remove ${H}`,
      `kept ${H} as it is: dpkg no longer records virt-aa-hook's diversion of it to ${R}`,
      "remove /var/lib/vah",
    ]);
    // Our link replaced by libvirt's helper (a reinstall without the diversion): kept, and the
    // diversion is not removed over it.
    const replacedByFile = host(ours, "libvirt's again");
    const withLinks = { ...paths, ourLinks: { [H]: "/usr/lib/vah/virt-aa-helper" } };
    expect(() => planUninstall(replacedByFile, withLinks)).toThrow(new Refusal(`${H}: exists, cannot move ${R} back there (remove it, then run uninstall again)`));
    // An admin's network hook where ours was: kept; ours (still pointing at our launcher): removed.
    const N = "/etc/libvirt/hooks/network.d/vah";
    const net = (atN: { link: string } | string) => new MemoryHost({ "/var/lib/vah/install-manifest": `created-dir /var/lib/vah\ncreated ${N}\n`, [N]: atN });
    const netPaths = { ...paths, ourLinks: { [N]: "/usr/lib/vah/network-hook" } };
    expect(said(planUninstall(net("#!/bin/sh\n"), netPaths).steps)).toEqual([`kept ${N}: no longer virt-aa-hook's link to /usr/lib/vah/network-hook`, "remove /var/lib/vah"]);
    expect(said(planUninstall(net({ link: "/opt/admin-hook" }), netPaths).steps)).toEqual([`kept ${N}: no longer virt-aa-hook's link to /usr/lib/vah/network-hook`, "remove /var/lib/vah"]);
    expect(said(planUninstall(net({ link: "/usr/lib/vah/network-hook" }), netPaths).steps)).toEqual([`remove ${N}`, "remove /var/lib/vah"]);
    // Our link was replaced by a file and the manifest's `created` is gone: that file is not ours to remove.
    const h = host(ours, "someone's");
    h.nodes.set("/var/lib/vah/install-manifest", { kind: "file", mode: 0o644, content: Buffer.from(`created-dir /var/lib/vah\ndiverted ${H} ${R}\n`) });
    expect(() => planUninstall(h, paths)).toThrow(new Refusal(`${H}: exists, cannot move ${R} back there (remove it, then run uninstall again)`));
  });

  it("refuses, before any step, when a backup is missing or a manifest entry is unknown", () => {
    const host = libvirtHost();
    const w = wanted();
    host.apply(planInstall(host, w).steps, w.manifest);
    host.nodes.delete(`/var/lib/vah/backup${LOCAL}`);
    expect(() => planUninstall(host, paths)).toThrow(new Refusal(`/var/lib/vah/backup${LOCAL}: backup of ${LOCAL} is missing; nothing restored from here on`));
    host.nodes.set(w.manifest, { kind: "file", mode: 0o644, content: Buffer.from("bogus /x\n") });
    expect(() => planUninstall(host, paths)).toThrow(new Refusal("/var/lib/vah/install-manifest: unknown entry: bogus /x"));
  });
});

describe("withoutOurBlock", () => {
  it("takes out every BEGIN..END block, keeps the rest line for line (a last line without newline gets one)", () => {
    expect(withoutOurBlock("a\n# BEGIN virt-aa-hook\nx\n# END virt-aa-hook\nb")).toBe("a\nb\n");
    expect(withoutOurBlock("")).toBe("");
    expect(withoutOurBlock("# BEGIN virt-aa-hook\nunterminated\n")).toBe("");
  });
});
