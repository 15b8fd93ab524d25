import { PathError } from "../errors.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { absolute } from "./absolute.js";

const rule = ruleOf("input");

/**
 * `<input type='passthrough'|'evdev'>`: QEMU opens the host's evdev node (and, for evdev,
 * grabs it). Emulated mouse/tablet/keyboard inputs touch no host file.
 */
export const inputRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.inputs.flatMap((input) => {
    if (input.type !== "passthrough" && input.type !== "evdev") return [];
    const source = `input ${input.type}`;
    if (input.dev === undefined) throw new PathError(source, "missing <source evdev=...> device");
    return [rule(absolute(input.dev, source), "rw", source)];
  });
