/**
 * The hook's command line: `hook [--root DIR] [--] NAME OP SUBOP EXTRA`.
 *
 * libvirt passes exactly four arguments; hooks/qemu puts `--` before them so that a guest named
 * `--root` (or anything starting with "-") is read as a name, never as an option.
 */
export interface HookInvocation {
  root: string;
  guest: string;
  op: string;
  subop: string;
  /** May contain spaces ("from snapshot"); "-" when libvirt has nothing to say. */
  extra: string;
}

export class UsageError extends Error {}

export const HOOK_USAGE = "usage: virt-aa-hook hook [--root DIR] [--] NAME OPERATION SUB-OPERATION EXTRA < domain.xml";

export function parseHookArgs(args: readonly string[]): HookInvocation {
  let root = "/";
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (a === "--root") {
      const v = args[i + 1];
      if (v === undefined || v === "") throw new UsageError("--root needs a directory");
      root = v;
      i++;
    } else if (a.startsWith("--root=")) {
      root = a.slice("--root=".length);
      if (root === "") throw new UsageError("--root needs a directory");
    } else if (a.startsWith("-") && a !== "-") {
      throw new UsageError(`unknown option ${a}`);
    } else {
      break;
    }
  }
  const rest = args.slice(i);
  // Exactly libvirt's four: a shorter or longer command line is not libvirt calling.
  if (rest.length !== 4) throw new UsageError(`expected 4 arguments after the options, got ${rest.length}`);
  return { root, guest: rest[0]!, op: rest[1]!, subop: rest[2]!, extra: rest[3]! };
}
