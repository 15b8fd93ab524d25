/**
 * `virt-aa-hook network-hook [--root DIR] [--] NETWORK OP SUBOP EXTRA`, without yargs: libvirt's
 * network hook (hooks/network) waits for it on every port creation (src/network/hook.ts).
 */
import { formatLine } from "../errors.js";

export async function runNetworkHookCommand(args: string[]): Promise<number> {
  const { parseHookArgs, UsageError } = await import("../hook/args.js");
  let inv;
  try {
    inv = parseHookArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${formatLine("error", "-", "-", err.message)}\nusage: virt-aa-hook network-hook [--root DIR] [--] NETWORK OPERATION SUB-OPERATION EXTRA < hook-data.xml\n`);
    return 2;
  }
  const { runNetworkHook } = await import("../network/hook.js");
  return runNetworkHook(inv);
}
