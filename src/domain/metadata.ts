/**
 * The domain's own virt-aa-hook settings: one element of our namespace inside the root's
 * `<metadata>`, which libvirt keeps as written (`virsh metadata DOM --uri URI --key vah --set ...`):
 *
 *   <metadata>
 *     <vah:guest xmlns:vah="https://virt-aa-hook.org/xmlns/guest/1">
 *       <vah:mode>complain</vah:mode>
 *       <vah:allow path="/var/lib/libvirt/images/vm1-snapshots" access="rw" tree="yes"/>
 *     </vah:guest>
 *   </metadata>
 *
 * Elements are matched by namespace URI, never by prefix (libvirt rewrites the prefix to the
 * `--key` it was given). Other namespaces' elements are none of our business and are ignored, in
 * `<metadata>` and inside ours. Inside ours everything is checked: an unknown element of our
 * namespace, an element in no namespace (a forgotten prefix), an unknown attribute, a bad value,
 * a relative path, a second `<vah:mode>` or `<vah:guest>`, too many `<vah:allow>`: each is a
 * located fault, never skipped, because a setting silently ignored is a setting the admin
 * believes in and does not have. The XML is hostile (whoever may define the domain writes it);
 * what the entries may grant is the policy's decision (rules/metadata.ts, policy/provenance.ts).
 */
import type { AllowedPath, GuestSettings } from "./model.js";
import type { XmlElement } from "./tree.js";
import { path as pathAttr, yesNo } from "./fields.js";
import { MAX_METADATA_ALLOWS } from "./limits.js";

/** Our namespace. Versioned: an incompatible schema gets a new URI. */
export const METADATA_NS = "https://virt-aa-hook.org/xmlns/guest/1";

const MODES = ["enforce", "complain"] as const;
const ACCESS = ["r", "rw"] as const;
const ALLOW_ATTRIBUTES = new Set(["path", "access", "tree"]);

/** The settings in `<domain>`'s `<metadata>`, or undefined when it holds no element of ours. */
export function readSettings(domain: XmlElement): GuestSettings | undefined {
  const metadata = domain.child("metadata");
  if (!metadata) return undefined;
  const ours = metadata.elements().filter((el) => el.namespace === METADATA_NS);
  if (ours.length === 0) return undefined;
  if (ours.length > 1) ours[1]!.fail(`more than one element of namespace ${METADATA_NS}: found ${ours.length}, expected one <guest>`);
  const guest = ours[0]!;
  if (guest.localName !== "guest") guest.fail(`unknown element <${guest.localName}> of namespace ${METADATA_NS} (expected <guest>)`);
  noAttributes(guest);

  let mode: GuestSettings["mode"];
  const allow: AllowedPath[] = [];
  for (const el of guest.elements()) {
    const ns = el.namespace;
    if (ns === undefined) {
      el.fail(`element <${el.tag}> is in no namespace: write it in namespace ${METADATA_NS} (with the prefix of <${guest.tag}>)`);
    }
    if (ns !== METADATA_NS) continue; // another application's element
    switch (el.localName) {
      case "mode":
        if (mode !== undefined) el.fail("duplicate <mode>: a guest has one mode");
        mode = readMode(el);
        break;
      case "allow":
        if (allow.length === MAX_METADATA_ALLOWS) el.fail(`more than ${MAX_METADATA_ALLOWS} <allow> entries (the per-guest limit)`);
        allow.push(readAllow(el));
        break;
      default:
        el.fail(`unknown element <${el.localName}> of namespace ${METADATA_NS} (expected <mode> or <allow>)`);
    }
  }
  return mode === undefined ? { allow } : { mode, allow };
}

function noAttributes(el: XmlElement): void {
  const names = el.attributeNames();
  if (names.length > 0) el.fail(`unknown attribute "${names[0]}"`);
}

function readMode(el: XmlElement): NonNullable<GuestSettings["mode"]> {
  noAttributes(el);
  if (el.elements().length > 0) el.fail("expected text (enforce or complain), found elements");
  const value = el.text().trim();
  const mode = MODES.find((m) => m === value);
  return mode ?? el.fail(`invalid mode "${value.slice(0, 64)}" (expected enforce or complain)`);
}

function readAllow(el: XmlElement): AllowedPath {
  for (const name of el.attributeNames()) {
    if (!ALLOW_ATTRIBUTES.has(name)) el.fail(`unknown attribute "${name}" (expected path, access, tree)`);
  }
  if (el.elements().length > 0 || el.text().trim() !== "") el.fail("<allow> takes attributes only");
  const path = pathAttr(el, "path") ?? el.fail('missing attribute "path"');
  if (!path.startsWith("/")) el.fail(`attribute "path": not an absolute path: "${path.slice(0, 64)}"`);
  const rawAccess = el.attr("access") ?? el.fail('missing attribute "access" (r or rw)');
  const access = ACCESS.find((a) => a === rawAccess) ?? el.fail(`attribute "access": invalid value "${rawAccess.slice(0, 64)}" (expected r or rw)`);
  return { path, access, tree: yesNo(el, "tree") };
}
