import { parseDomain } from "../domain/index.js";
import { listStates } from "../store/state.js";
import type { HookContext } from "./context.js";

/**
 * The guest's UUID for operations that need only its identity (started, release): from the XML
 * when it parses, else from our own records by the name libvirt passed. Release must clean up
 * even when today's policy would reject the guest's XML.
 */
export function identifyGuest(ctx: HookContext, xml: Buffer): { uuid: string; name: string } | undefined {
  try {
    // The model only, no policy and no host reads: release must work for a guest today's
    // policy would refuse.
    const domain = parseDomain(xml);
    return { uuid: domain.uuid, name: domain.name };
  } catch {
    const byName = listStates(ctx.layout.host(ctx.layout.stateDir)).filter((s) => s.name === ctx.guest);
    if (byName.length === 1) return { uuid: byName[0]!.uuid, name: byName[0]!.name };
    return undefined;
  }
}

