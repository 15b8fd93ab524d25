import { PathError } from "../errors.js";
import { absolute } from "./absolute.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { domainShortName } from "./runtime.js";

const rule = ruleOf("graphics");

/**
 * `<graphics type='dbus'>`: QEMU's D-Bus display connects to a bus. Without `p2p='yes'` and
 * without `address`, libvirt starts a private dbus-daemon for the guest and points QEMU at it
 * (qemu_dbus.c qemuDBusGetAddress/qemuDBusCreateSocketPath: `unix:path=<dbusStateDir>/<id>-<short
 * name>-dbus.sock`, dbusStateDir = `<state dir>/dbus`, /run/libvirt/qemu/dbus). QEMU connects:
 * `rw` on that socket, nothing else of the daemon's (its pid and config are libvirt's). With
 * `address='unix:path=...'` QEMU connects there instead; other address forms (abstract sockets,
 * tcp) name no file. `p2p='yes'`: libvirt hands QEMU a connected socket pair, no file.
 * The XML of `prepare`/`start` has the runtime id the daemon's socket is named after; without it
 * (stopped/release XML) there is nothing to grant.
 */
export const dbusDisplayRules: RuleFamily = (ctx: RuleContext) => {
  const out = [];
  let busGranted = false;
  for (const [i, display] of ctx.domain.devices.dbusDisplays.entries()) {
    if (display.p2p) continue;
    const source = `graphics dbus ${i}`;
    if (display.address !== undefined) {
      for (const socket of busSockets(display.address, source)) out.push(rule(absolute(socket, source), "rw", source));
      continue;
    }
    const short = domainShortName(ctx.domain);
    if (short === undefined || busGranted) continue;
    out.push(rule(`${ctx.layout.libvirtRunDir}/dbus/${short}-dbus.sock`, "rw", source));
    busGranted = true;
  }
  return out;
};

/**
 * The socket files a D-Bus address names (D-Bus specification, "Server Addresses"):
 * `transport:key=value,key=value`, several addresses separated by `;` (tried in order), values
 * %-escaped. `unix:path=<file>` names a file (QEMU connects: rw); `unix:abstract=` and `tcp:` name
 * none; `guid=` only checks the server. Anything else (other unix keys, nonce-tcp's noncefile,
 * unixexec, malformed text) is refused naming the element rather than left without a rule.
 */
function busSockets(address: string, source: string): string[] {
  const files: string[] = [];
  for (const one of address.split(";").filter((a) => a !== "")) {
    const colon = one.indexOf(":");
    const transport = colon < 0 ? "" : one.slice(0, colon);
    if (transport === "tcp") continue;
    const pairs = (colon < 0 ? "" : one.slice(colon + 1)).split(",").filter((p) => p !== "").map((p) => {
      const eq = p.indexOf("=");
      return eq < 1 ? undefined : ([p.slice(0, eq), p.slice(eq + 1)] as const);
    });
    const keys = pairs.map((p) => p?.[0]);
    const known = pairs.every((p) => p !== undefined && (p[0] === "path" || p[0] === "abstract" || p[0] === "guid"));
    const targets = keys.filter((k) => k === "path" || k === "abstract").length;
    if (transport !== "unix" || !known || targets !== 1) {
      throw new PathError(address, `${source}: unsupported D-Bus address ${JSON.stringify(one)}; use unix:path=<socket>[,guid=...], unix:abstract=... or tcp:...`);
    }
    const path = pairs.find((p) => p![0] === "path")?.[1];
    if (path === undefined) continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      throw new PathError(address, `${source}: malformed %-escape in D-Bus address ${JSON.stringify(one)}`);
    }
    files.push(decoded);
  }
  return files;
}
