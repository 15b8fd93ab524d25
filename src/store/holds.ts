import type { GuestState, HeldPath } from "./state.js";

/**
 * The arithmetic of the paths a guest's record holds (`holds`, state.ts), without the host: what a
 * new profile adds to an old claim, the claim held while one replaces the other, and when a
 * `prepare` restarts the guest's grace window. Pure, so the sync planner (plan.ts) can use it;
 * checking a claim against the other guests reads the host and lives in hook/exclusive.ts.
 */

/** A `prepare` refreshes its record's time only when it is older than this (saves an fsync'ed write). */
const REFRESH_MS = 60 * 1000;

/** Are all of `next` already held in `held`, with no wider access? (Then nothing new is claimed.) */
export function coveredBy(next: readonly HeldPath[], held: readonly HeldPath[] | undefined): boolean {
  if (held === undefined) return next.length === 0;
  // By path: a file that appeared since (a log QEMU created) or was replaced is still the path
  // this guest held; what it is now is checked against the others on every call anyway.
  const old = new Map(held.map((h) => [holdKey(h), h]));
  return next.every((h) => {
    const o = old.get(holdKey(h));
    // Claiming write where we held read, or dropping <shareable/>, is a wider claim.
    return o !== undefined && (o.write || !h.write) && (!o.shareable || h.shareable);
  });
}

/** The union of two claims (held while a new profile replaces the old one). */
export function unionHolds(a: readonly HeldPath[] | undefined, b: readonly HeldPath[]): HeldPath[] {
  const out = new Map<string, HeldPath>();
  for (const h of [...(a ?? []), ...b]) {
    const seen = out.get(holdKey(h));
    out.set(holdKey(h), seen ? { ...h, write: seen.write || h.write, shareable: seen.shareable && h.shareable } : h);
  }
  return [...out.values()];
}

/** A path and a tree of the same name are two different holds. */
function holdKey(h: HeldPath): string {
  return h.tree ? `${h.path}\u0000tree` : h.path;
}

/** At `prepare`: is the record's time too old to stand for this start? */
export function needsRefresh(state: GuestState | undefined, now: number): boolean {
  const prepared = state?.prepared === undefined ? NaN : Date.parse(state.prepared);
  return !Number.isFinite(prepared) || Math.abs(now - prepared) > REFRESH_MS;
}
