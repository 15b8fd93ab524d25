/**
 * `virt-aa-hook hook [--root DIR] [--] NAME OP SUBOP EXTRA`, without yargs: libvirt waits for this
 * on every guest start, so only what the operation needs is loaded (see src/hook/run.ts).
 */
export async function runHookCommand(args: string[]): Promise<number> {
  const { parseHookArgs, UsageError, HOOK_USAGE } = await import("../hook/args.js");
  let inv;
  try {
    inv = parseHookArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    const { formatLine } = await import("../errors.js");
    process.stderr.write(`${formatLine("error", "-", "-", err.message)}\n${HOOK_USAGE}\n`);
    return 2;
  }
  const { runHook } = await import("../hook/run.js");
  return runHook(inv);
}
