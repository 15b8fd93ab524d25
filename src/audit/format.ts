/**
 * Findings as text (three or four lines each) or as one JSON object per line (docs/denials.md,
 * "--json"). Every string that came from an audit line went through `visible` (display.ts).
 */
import { visible } from "./display.js";
import { jsonPath, type Finding } from "./map.js";

function iso(t: number | undefined): string | null {
  return t === undefined ? null : new Date(Math.round(t * 1000)).toISOString();
}

/**
 * lab-a: DENIED open "/var/lib/libvirt/images/lab-b.qcow2" r by qemu-system-x86, 2 times, 2026-12-05T10:19:33.440Z to 2026-12-05T10:19:33.444Z
 *   profile libvirt-1ab0000a-0000-4000-8000-00000000000a
 *   nothing in lab-a's XML asks for /var/lib/libvirt/images/lab-b.qcow2 (guest lab-b (disk vda) has it in the XML)
 *   fix: ...
 */
export function findingText(f: Finding): string {
  const r = f.record;
  const who = f.guest !== undefined ? visible(f.guest) : "(unknown guest)";
  const object = r.capname !== undefined ? `capability ${r.capname}` : r.name !== undefined ? `"${visible(r.name)}"` : "";
  const mask = r.requested !== undefined ? ` ${r.requested}` : "";
  const by = r.comm !== undefined ? ` by ${visible(r.comm)}` : "";
  const first = iso(f.first);
  const last = iso(f.last);
  const when = first === null ? "" : f.count === 1 || first === last ? `, at ${first}` : `, ${first} to ${last}`;
  return (
    `${who}: ${r.decision} ${visible(r.operation)}${object ? ` ${object}` : ""}${mask}${by}, ${f.count} ${f.count === 1 ? "time" : "times"}${when}\n` +
    `  profile ${visible(r.profile)}\n` +
    `  ${f.explanation}\n` +
    `  fix: ${f.fix}\n`
  );
}

/** The stable JSON fields, in this order (docs/denials.md). */
export function findingJson(f: Finding): string {
  const r = f.record;
  return JSON.stringify({
    guest: f.guest === undefined ? null : visible(f.guest),
    uuid: f.uuid ?? null,
    profile: visible(r.profile),
    decision: r.decision,
    operation: visible(r.operation),
    ...jsonPath(r.name),
    capability: r.capname ?? null,
    requested: r.requested ?? null,
    denied: r.denied ?? null,
    comm: r.comm === undefined ? null : visible(r.comm),
    count: f.count,
    first: iso(f.first),
    last: iso(f.last),
    class: f.class,
    elements: f.elements.map(visible),
    granted: f.granted ?? null,
    others: f.others,
    explanation: f.explanation,
    fix: f.fix,
  });
}
