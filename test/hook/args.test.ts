import { describe, expect, it } from "vitest";
import { parseHookArgs, UsageError } from "../../src/hook/args.js";

describe("hook arguments", () => {
  it("takes libvirt's four arguments unchanged, the fourth with a space", () => {
    expect(parseHookArgs(["vm1", "release", "end", "from snapshot"])).toEqual({
      root: "/", guest: "vm1", op: "release", subop: "end", extra: "from snapshot",
    });
  });

  it("reads --root before -- and treats everything after -- as arguments, even option-like names", () => {
    expect(parseHookArgs(["--root", "/tmp/r", "--", "--root", "prepare", "begin", "-"])).toEqual({
      root: "/tmp/r", guest: "--root", op: "prepare", subop: "begin", extra: "-",
    });
    expect(parseHookArgs(["--root=/x", "-", "prepare", "begin", "-"]).guest).toBe("-");
  });

  it("keeps a numeric-looking name as text", () => {
    expect(parseHookArgs(["--", "1e3", "prepare", "begin", "-"]).guest).toBe("1e3");
  });

  it.each([
    [[], "expected 4 arguments after the options, got 0"],
    [["vm1"], "expected 4 arguments after the options, got 1"],
    [["vm1", "a", "b", "c", "d"], "expected 4 arguments after the options, got 5"],
    [["--root"], "--root needs a directory"],
    [["--verbose", "vm1", "prepare", "begin", "-"], "unknown option --verbose"],
  ])("rejects %j: %s", (args, message) => {
    expect(() => parseHookArgs(args as string[])).toThrow(UsageError);
    expect(() => parseHookArgs(args as string[])).toThrow(message);
  });
});
