import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { absolute } from "./absolute.js";

const rule = ruleOf("rng");

/** libvirt's default for `<backend model='random'/>` without a path. */
export const DEFAULT_RNG_DEVICE = "/dev/random";

/**
 * `<rng>`: the `random` backend reads a host device. The `egd` backend is a chardev (the chardev
 * family covers it); `builtin` uses getrandom() and needs no file.
 */
export const rngRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.rngs.flatMap((rng, i) =>
    rng.backend === "random" ? [rule(absolute(rng.path ?? DEFAULT_RNG_DEVICE, `rng ${i} random`), "r", `rng ${i} random`)] : [],
  );
