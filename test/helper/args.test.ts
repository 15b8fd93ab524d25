import { describe, expect, it } from "vitest";
import { parseHelperArgs, parseHelperCommand, UsageError, type HelperArgs } from "../../src/helper/args.js";

const UUID = "6a1e3c2b-9d84-4f0a-b1c2-d3e4f5a6b7c8";
const P = `libvirt-${UUID}`;

/** Parsed, not "help". */
const parse = (argv: string[]) => parseHelperArgs(argv) as HelperArgs;

function fails(argv: string[], message: string | RegExp): void {
  let err: unknown;
  try {
    parseHelperArgs(argv);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UsageError);
  if (typeof message === "string") expect((err as Error).message).toBe(message);
  else expect((err as Error).message).toMatch(message);
}

describe("libvirt's command lines (security_apparmor.c load_profile / remove_profile)", () => {
  it("regeneration: -c / -r -u P", () => {
    expect(parse(["-c", "-u", P])).toEqual({ mode: "c", profileName: P, uuid: UUID, dryRun: false });
    expect(parse(["-r", "-u", P])).toEqual({ mode: "r", profileName: P, uuid: UUID, dryRun: false });
  });
  it("append: -r -u P -F path (and the never-sent -f)", () => {
    expect(parse(["-r", "-u", P, "-F", "/var/lib/libvirt/images/a.qcow2"])).toEqual({
      mode: "r",
      profileName: P,
      uuid: UUID,
      dryRun: false,
      file: { path: "/var/lib/libvirt/images/a.qcow2", append: true },
    });
    expect(parse(["-r", "-u", P, "-f", "/x"]).file).toEqual({ path: "/x", append: false });
  });
  it("-D, -R and -a take only -u", () => {
    expect(parse(["-D", "-u", P]).mode).toBe("D");
    expect(parse(["-R", "-u", P]).mode).toBe("R");
    expect(parse(["-a", "-u", P]).mode).toBe("a");
  });
});

describe("getopt semantics of acdDhrRH:b:u:p:f:F:", () => {
  it("attached arguments, clusters, the last mode and the last file win", () => {
    expect(parse([`-u${P}`, "-rd"])).toEqual({ mode: "r", profileName: P, uuid: UUID, dryRun: true });
    expect(parse(["-c", "-r", "-u", P]).mode).toBe("r");
    expect(parse(["-r", "-u", P, "-F", "/a", "-F/b"]).file).toEqual({ path: "/b", append: true });
    expect(parse(["-ru", P]).mode).toBe("r");
  });
  it("an option's argument is the next word whatever it looks like", () => {
    expect(parse(["-r", "-u", P, "-F", "-D"])).toMatchObject({ mode: "r", file: { path: "-D", append: true } });
    expect(parse(["-r", "-u", P, "-F", "pipe:[123]"]).file).toEqual({ path: "pipe:[123]", append: true });
  });
  it("long options, abbreviated too", () => {
    expect(parse(["--replace", "--uuid", P]).mode).toBe("r");
    expect(parse(["--delete", `--uuid=${P}`]).mode).toBe("D");
    expect(parse(["--cr", "--uu", P]).mode).toBe("c");
    fails(["--re", "-u", P], "option --re is ambiguous");
    fails(["--append-file", "-u", P], "unsupported option --append-file (use -f or -F)");
    fails(["--replace=1", "-u", P], "option --replace takes no argument");
  });
  it("-h prints the usage where it is reached", () => {
    expect(parseHelperArgs(["-h"])).toBe("help");
    expect(parseHelperArgs(["-r", "-h", "-x"])).toBe("help");
    fails(["-x", "-h"], "unsupported option -x");
  });
  it("-H, -b and -p take an argument and are unsupported, as in libvirt's helper", () => {
    fails(["-r", "-u", P, "-p", "probe"], "unsupported option -p");
    fails(["-H", "x", "-r", "-u", P], "unsupported option -H");
    fails(["-b", "x"], "unsupported option -b");
  });
  it("refusals", () => {
    fails(["-u", P], "bad command: no mode (-a, -c, -r, -R or -D)");
    fails(["-r"], "invalid UUID: -u libvirt-<uuid> is missing");
    fails(["-r", "-u"], "option -u needs an argument");
    fails(["-r", "-u", P, "-F"], "option -F needs an argument");
    fails(["-r", "-u", UUID], /^invalid UUID "6a1e3c2b-.*": expected libvirt-<uuid> in canonical form$/);
    fails(["-r", "-u", P.toUpperCase()], /^invalid UUID/);
    fails(["-r", "-u", `libvirt-${UUID.replace(/-/g, "")}`], /^invalid UUID/);
    fails(["-r", "-u", `${P}x`], /^invalid UUID/);
    fails(["-r", "-u", "libvirt-../../etc/passwd"], /^invalid UUID/);
    fails(["-r", "-u", P, "extra"], 'unexpected argument "extra"');
    fails(["-r", "-u", P, "--", "extra"], 'unexpected argument "extra"');
    fails(["-D", "-u", P, "-F", "/x"], "-F is only valid with -c or -r");
    fails([], "bad command: no mode (-a, -c, -r, -R or -D)");
  });
});

describe("the bundle's command: [--root DIR] -- WORDS", () => {
  it("root and words", () => {
    expect(parseHelperCommand(["--root", "/tmp/r", "--", "-r", "-u", P])).toEqual({
      kind: "run",
      invocation: { root: "/tmp/r", argv: ["-r", "-u", P], args: { mode: "r", profileName: P, uuid: UUID, dryRun: false } },
    });
    expect(parseHelperCommand(["--", "-h"])).toEqual({ kind: "help" });
  });
  it("no -- before libvirt's words is not the launcher calling", () => {
    expect(() => parseHelperCommand(["-r", "-u", P])).toThrow('expected "--" before the helper\'s arguments, got "-r"');
    expect(() => parseHelperCommand(["--root"])).toThrow("--root needs a directory");
  });
});
