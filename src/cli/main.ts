/**
 * Entry point of the bundle (dist/virt-aa-hook.cjs), for the hook and for admins. The hook reaches
 * it through hooks/qemu and the loader (src/cli/loader.ts, docs/architecture.md "The launch chain").
 * `hook` takes a fast path that loads neither yargs nor anything its operation does not need:
 * libvirt waits for it on every guest start. So does `virt-aa-helper` (src/helper), which
 * libvirt's AppArmor driver runs through hooks/virt-aa-helper.
 */
async function main(argv: string[]): Promise<number> {
  if (asksForHelp(argv)) return (await import("./cli.js")).runCli(argv);
  if (argv[0] === "hook") {
    const { runHookCommand } = await import("./hook-fast.js");
    return runHookCommand(argv.slice(1));
  }
  if (argv[0] === "network-hook") {
    const { runNetworkHookCommand } = await import("./network-fast.js");
    return runNetworkHookCommand(argv.slice(1));
  }
  if (argv[0] === "virt-aa-helper") {
    // libvirt's AppArmor driver runs this through hooks/virt-aa-helper (docs/helper.md).
    const { runHelperCommand } = await import("../helper/command.js");
    return runHelperCommand(argv.slice(1));
  }
  const { runCli } = await import("./cli.js");
  return runCli(argv);
}

/**
 * `hook --help` and the like: the launchers' commands parse their own arguments (no yargs), so
 * their help is yargs' (cli.ts). Only an option before `--` counts: after it come libvirt's words,
 * and a guest may be named "--help".
 */
function asksForHelp(argv: string[]): boolean {
  if (argv[0] !== "hook" && argv[0] !== "network-hook" && argv[0] !== "virt-aa-helper") return false;
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--help");
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // The hook has awaited all its work and written its output (stderr and files are synchronous
    // here): exiting now skips tearing down the heap, a few milliseconds of every guest start.
    if (process.argv[2] === "hook" || process.argv[2] === "network-hook" || process.argv[2] === "virt-aa-helper") process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`virt-aa-hook: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    // libvirt's helper exits 0 or 1, nothing else (docs/helper.md).
    process.exitCode = process.argv[2] === "virt-aa-helper" ? 1 : 70;
  },
);
