/**
 * libvirt's network hook, `/etc/libvirt/hooks/network NETWORK OP SUBOP EXTRA` with
 * `<hookData><network/><networkport/></hookData>` on stdin (docs/hooks.rst), installed as
 * /usr/lib/virt-aa-hook/network-hook (hooks/network). Only `port-created` and `port-deleted` are
 * acted on; every other operation exits 0 at once.
 *
 * What a port can tell: its owner domain's UUID and how it is plugged, not the NIC model, not
 * the tap or macvtap device QEMU will get. What a NIC needs in QEMU's profile:
 * - a tap (`<plug type='network'|'bridge'>`): its descriptor resolves to /dev/net/tun, which
 *   abstractions/libvirt-qemu grants every guest already;
 * - a macvtap (`<plug type='direct'>`): /dev/tap<ifindex>, an index the port does not know (it
 *   exists only once libvirt created the device, after this hook); pre-authorise it with the
 *   guest's metadata or `virt-aa-hook grant` instead;
 * - a virtio NIC on either: /dev/vhost-net, in the profile only if the XML had a virtio NIC when
 *   it was built. That is the one thing this hook adds: when the guest's `.files` does not grant
 *   it, a `by: "network"` grant of /dev/vhost-net for the port (also for a NIC that turns out not
 *   to be virtio: vhost-net gives a guest only vhost instances of its own, and libvirt's own
 *   helper grants it just as widely), dropped again at port-deleted;
 * - `<plug type='hostdev-pci'>`: a VFIO group the port does not name: nothing.
 *
 * Exit codes: 0 for every port of a guest we do not manage and every other operation; for a guest
 * we manage, a port-created whose grant cannot be applied exits 1 (the port, and so the NIC
 * attach or the start, fails with our line); port-deleted never fails. Stdin is not logged.
 */
import { ConfigError, DEFAULT_CONFIG, loadConfig, type Config } from "../config.js";
import { errorLine, errorReason, formatLine, type Warning } from "../errors.js";
import type { HookContext } from "../hook/context.js";
import type { HookInvocation } from "../hook/args.js";
import { HookLog } from "../hook/log.js";
import { readStdin } from "../hook/stdin.js";
import type { RuntimeGrant } from "../ir.js";
import { Layout } from "../layout.js";
import { changeGrantsWithoutXml } from "./apply.js";
import { readPort } from "./port.js";

/** The hook data is a network and a port definition: a few KiB. */
const MAX_INPUT_BYTES = 1024 * 1024;

/** Plug types whose NIC may be a virtio NIC on a tap or macvtap, i.e. may need /dev/vhost-net. */
const VHOST_PLUGS = new Set(["network", "bridge", "direct"]);

export const VHOST_NET = "/dev/vhost-net";

/** `inv.guest` is the network's name here (the hook's first argument). */
export async function runNetworkHook(inv: HookInvocation): Promise<number> {
  const started = process.hrtime.bigint();
  const op = inv.op;
  if (op !== "port-created" && op !== "port-deleted") return 0;
  let layout = new Layout(inv.root);
  const input = await readStdin(MAX_INPUT_BYTES);
  let log = new HookLog(layout.host(DEFAULT_CONFIG.logFile), DEFAULT_CONFIG.logLevel);
  const warnings: Warning[] = [];
  let who = `network ${inv.guest}`;
  let result: string;
  let exit = 0;
  let config: Config | undefined;
  try {
    config = loadConfig(layout);
    layout = Layout.from(inv.root, config);
    log = new HookLog(layout.logFile === "" ? undefined : layout.host(layout.logFile), config.logLevel);
    const port = input.truncated ? { none: "hook data too large" } : readPort(input.data.toString("utf8"));
    if ("none" in port) {
      result = `nothing to do: ${port.none}`;
    } else {
      who = port.ownerName ?? port.owner;
      const ctx: HookContext = { layout, config, guest: who, op, warnings };
      let outcome;
      if (op === "port-deleted") {
        outcome = await changeGrantsWithoutXml(ctx, port.owner, { dropPort: port.port });
      } else if (port.plug !== undefined && VHOST_PLUGS.has(port.plug)) {
        const grant: RuntimeGrant = { path: VHOST_NET, write: true, by: "network", source: `network port ${port.port}`, port: port.port };
        outcome = await changeGrantsWithoutXml(ctx, port.owner, { add: [grant] });
      } else {
        outcome = { nothing: `plug ${port.plug ?? "none"}: nothing a port of that kind needs is known here` };
      }
      result = "done" in outcome ? outcome.done : `nothing to do: ${outcome.nothing}`;
    }
  } catch (err) {
    result = `error: ${errorReason(err)}${err instanceof ConfigError ? " (config)" : ""}`;
    // A port of a guest we do not manage never fails: a config we cannot read means we manage none.
    if (op === "port-created" && !(err instanceof ConfigError)) {
      process.stderr.write(errorLine(who, err) + "\n");
      exit = 1;
    } else {
      process.stderr.write(errorLine(who, err, "warning") + "\n");
      result = `ignored ${result}`;
    }
  }
  for (const w of warnings) log.warning(who, op, w);
  const shown = warnings.filter((w) => w.stderr);
  for (const w of shown) process.stderr.write(formatLine("warning", who, w.path, w.reason) + "\n");
  log.summary(who, op, exit, Number(process.hrtime.bigint() - started) / 1e6, result);
  return exit;
}
