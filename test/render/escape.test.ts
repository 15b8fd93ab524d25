import { describe, expect, it } from "vitest";
import { PathError } from "../../src/errors.js";
import { escapeLiteral } from "../../src/render/index.js";

describe("escapeLiteral", () => {
  it.each([
    ["/var/lib/libvirt/images/a.qcow2", "/var/lib/libvirt/images/a.qcow2"],
    ["/srv/web[1].img", "/srv/web\\[1\\].img"],
    ["/srv/{a,b}.img", "/srv/\\{a\\,b\\}.img"],
    ["/srv/*", "/srv/\\*"],
    ["/srv/a?b", "/srv/a\\?b"],
    ["/srv/a^b", "/srv/a\\^b"],
    ["/srv/a\\b", "/srv/a\\134b"],
    ['/srv/a"b', "/srv/a\\042b"],
    ["/srv/@{HOME}", "/srv/@\\{HOME\\}"],
    ["/srv/x y#z", "/srv/x y#z"],
    ["/srv/$.+|()-'", "/srv/$.+|()-'"],
    ["/var/lib/libvirt/images/ünïcødé 雪.img", "/var/lib/libvirt/images/ünïcødé 雪.img"],
    ["/srv/😀", "/srv/😀"],
    ["/srv/\\1", "/srv/\\1341"], // octal stops after three digits, so a following digit stays literal
  ])("%j → %j", (input, expected) => {
    expect(escapeLiteral(input)).toBe(expected);
  });

  it("rejects every C0 control character and DEL", () => {
    const controls = [...Array(0x20).keys(), 0x7f].map((c) => String.fromCharCode(c));
    for (const c of controls) {
      expect(() => escapeLiteral(`/srv/a${c}b`)).toThrow(new PathError(`/srv/a${c}b`, "control character in path"));
    }
  });

  it("rejects a lone surrogate, which cannot be written as UTF-8", () => {
    expect(() => escapeLiteral("/srv/\ud800x")).toThrow(new PathError("/srv/\ud800x", "invalid Unicode in path"));
    expect(() => escapeLiteral("/srv/x\udc00")).toThrow(PathError);
  });

  it("rejects the empty path", () => {
    expect(() => escapeLiteral("")).toThrow(new PathError("", "empty path"));
  });

  it("throws PathError instances carrying the path and reason", () => {
    try {
      escapeLiteral("/a\nb");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PathError);
      expect((err as PathError).path).toBe("/a\nb");
      expect((err as PathError).reason).toBe("control character in path");
    }
  });
});
