import type { CommandModule } from "yargs";
import { runNetworkHookCommand } from "../network-fast.js";
import { libvirtHookCommand } from "./hook.js";

/** `virt-aa-hook [--root DIR] network-hook NETWORK OP SUBOP EXTRA`: libvirt's network hook (hooks/network). */
export function networkHookCommand(): CommandModule<{ root: string }, { root: string } & Record<string, unknown>> {
  return libvirtHookCommand(
    "network-hook",
    "Run as libvirt's network hook (/etc/libvirt/hooks/network): the hook data XML on stdin; at port-created and port-deleted, grant and drop /dev/vhost-net for a guest virt-aa-hook manages",
    [
      ["network", "network name"],
      ["operation", "port-created, port-deleted (others: nothing to do)"],
      ["suboperation", "begin or end"],
      ["extra", 'extra argument ("-" when libvirt has none)'],
    ],
    runNetworkHookCommand,
  );
}
