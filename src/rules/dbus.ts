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
      const socket = /^unix:path=([^,;]+)$/.exec(display.address)?.[1];
      if (socket !== undefined) out.push(rule(absolute(socket), "rw", source));
      continue;
    }
    const short = domainShortName(ctx.domain);
    if (short === undefined || busGranted) continue;
    out.push(rule(`${ctx.layout.libvirtRunDir}/dbus/${short}-dbus.sock`, "rw", source));
    busGranted = true;
  }
  return out;
};
