import { describe, expect, it } from "vitest";
import type { Rng } from "../../src/domain/model.js";
import { rngRules as rngRulesWithOrigin } from "../../src/rules/rng.js";
import { baseDomain, expectPathError, ruleContext, withoutOrigins } from "./fixtures.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const rngRules = withoutOrigins(rngRulesWithOrigin);

const rngs = (...r: Rng[]) => rngRules(ruleContext(baseDomain({ devices: { rngs: r } })));

describe("rng", () => {
  it("reads the random backend's device, /dev/random by default; egd and builtin need nothing here", () => {
    expect(
      rngs(
        { model: "virtio", backend: "random", path: "/dev/hwrng" },
        { model: "virtio", backend: "egd" },
        { model: "virtio", backend: "random" },
        { model: "virtio", backend: "builtin" },
      ),
    ).toEqual([
      { path: "/dev/hwrng", suffix: "", perms: "r", source: "rng 0 random" },
      { path: "/dev/random", suffix: "", perms: "r", source: "rng 2 random" },
    ]);
  });

  it("rejects a relative device", () => {
    expectPathError(() => rngs({ backend: "random", path: "hwrng" }), "hwrng", "rng 0 random: path is not absolute");
  });
});
