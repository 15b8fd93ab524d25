import { describe, expect, it } from "vitest";
import type { Input } from "../../src/domain/model.js";
import { inputRules as inputRulesWithOrigin } from "../../src/rules/inputs.js";
import { baseDomain, expectPathError, ruleContext, withoutOrigins } from "./fixtures.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const inputRules = withoutOrigins(inputRulesWithOrigin);

const inputs = (...i: Input[]) => inputRules(ruleContext(baseDomain({ devices: { inputs: i } })));

describe("inputs", () => {
  it("grants passthrough and evdev devices, nothing for emulated inputs", () => {
    expect(
      inputs(
        { type: "tablet" },
        { type: "passthrough", dev: "/dev/input/event1" },
        { type: "keyboard" },
        { type: "evdev", dev: "/dev/input/by-id/usb-kbd-event-kbd" },
      ),
    ).toEqual([
      { path: "/dev/input/event1", suffix: "", perms: "rw", source: "input passthrough" },
      { path: "/dev/input/by-id/usb-kbd-event-kbd", suffix: "", perms: "rw", source: "input evdev" },
    ]);
  });

  it("rejects a relative or missing device", () => {
    expectPathError(() => inputs({ type: "evdev", dev: "input/event1" }), "input/event1", "input evdev: path is not absolute");
    expectPathError(() => inputs({ type: "passthrough" }), "input passthrough", "missing <source evdev=...> device");
  });
});
