/**
 * `virt-aa-hook virt-aa-helper [--root DIR] -- ARGS...`, without yargs: what hooks/virt-aa-helper
 * runs for libvirt's AppArmor driver (docs/helper.md). Exit codes 0 and 1 only.
 */
import { formatLine } from "../errors.js";

export async function runHelperCommand(words: string[]): Promise<number> {
  const { parseHelperCommand, UsageError, HELPER_USAGE } = await import("./args.js");
  let parsed;
  try {
    parsed = parseHelperCommand(words);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${formatLine("error", "-", "-", err.message)}\n`);
    return 1;
  }
  if (parsed.kind === "help") {
    process.stdout.write(HELPER_USAGE);
    return 0;
  }
  const { runHelper } = await import("./run.js");
  return runHelper(parsed.invocation);
}
