#!/usr/bin/env node
// record-to-fixtures.mjs [RECORD_DIR] [FIXTURES_DIR] — turns what the lab's record mode
// (test/lab/guest/record.sh, `bash test/lab/run.sh --modes record --out .cache/lab/record`) saved
// into test/fixtures/libvirt-helper-calls/<operation>.json: for each operation, the calls libvirt
// 9.0's own AppArmor driver made to /usr/lib/libvirt/virt-aa-helper, in order, as
// [{ "argv": [...], "stdin": "..." }]. argv[0] is the path libvirt executed. The domain XML on
// stdin is libvirt's own (VIR_DOMAIN_DEF_FORMAT_SECURE; the lab's guests have no secrets).
// Also writes README.md there: per operation the command, virsh's exit, each call's exit code.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROJECT = path.resolve(HERE, "../..");
const REC = process.argv[2] ?? path.join(PROJECT, ".cache/lab/record/record-boot1/record");
const DEST = process.argv[3] ?? path.join(PROJECT, "test/fixtures/libvirt-helper-calls");
const read = (f) => (existsSync(f) ? readFileSync(f, "utf8") : "");
const lines = (s) => s.replace(/\n$/, "").split("\n").filter((l, i, a) => !(a.length === 1 && l === ""));

mkdirSync(DEST, { recursive: true });
const opsDir = path.join(REC, "ops");
const table = [];
for (const entry of readdirSync(opsDir).sort()) {
  const dir = path.join(opsDir, entry);
  const op = entry.replace(/^\d+-/, "");
  const calls = readdirSync(dir)
    .filter((f) => f.endsWith(".argv"))
    .sort()
    .map((f) => {
      const base = path.join(dir, f.slice(0, -".argv".length));
      return { argv: lines(read(`${base}.argv`)), stdin: read(`${base}.stdin`), rc: read(`${base}.rc`).trim() };
    });
  writeFileSync(path.join(DEST, `${op}.json`), JSON.stringify(calls.map(({ argv, stdin }) => ({ argv, stdin })), null, 2) + "\n");
  // What reached /etc/libvirt/hooks/network during the operation (same shape), in network-hook/.
  const hookDir = path.join(dir, "nethook");
  const hooks = existsSync(hookDir)
    ? readdirSync(hookDir).filter((f) => f.endsWith(".argv")).sort().map((f) => {
        const base = path.join(hookDir, f.slice(0, -".argv".length));
        return { argv: lines(read(`${base}.argv`)), stdin: read(`${base}.stdin`) };
      })
    : [];
  if (hooks.length > 0) {
    mkdirSync(path.join(DEST, "network-hook"), { recursive: true });
    writeFileSync(path.join(DEST, "network-hook", `${op}.json`), JSON.stringify(hooks, null, 2) + "\n");
  }
  table.push({
    op,
    command: read(path.join(dir, "command")).trim(),
    exit: read(path.join(dir, "exit")).trim(),
    calls: calls.map((c) => `\`${c.argv.slice(1).join(" ")}\` → ${c.rc || "?"}`),
    hooks: hooks.map((h) => `\`${h.argv.slice(1).join(" ")}\``),
    denied: read(path.join(dir, "apparmor.log")).split("\n").filter((l) => l.includes('apparmor="DENIED"')).length,
  });
}
const md = [
  "# libvirt 9.0's calls to virt-aa-helper, recorded",
  "",
  "Recorded by the lab's record mode (`test/lab/guest/record.sh`, converted by `test/lab/record-to-fixtures.mjs`):",
  "Debian 12's libvirt 9.0.0 with its own AppArmor driver and dynamic labels (no virt-aa-hook), in",
  "Debian's AppArmor kernel; `/usr/lib/libvirt/virt-aa-helper` diverted to a wrapper that saved each",
  "call and ran the real helper. One guest `rec-a` (UUID 1ab00a11-0000-4000-8000-0000000000a1), TCG.",
  "Each `<operation>.json` is `[{argv, stdin}]` in call order (argv[0] = the path libvirt executed).",
  "",
  "network-hook/<operation>.json: what reached the network hook (/etc/libvirt/hooks/network) meanwhile, same shape.",
  "",
  "| operation | command | virsh exit | helper calls (argv[1..] → helper exit) | network hook | DENIED lines |",
  "|---|---|---|---|---|---|",
  ...table.map((t) => `| ${t.op} | \`${t.command.replace(/\|/g, "\\|")}\` | ${t.exit} | ${t.calls.join("<br>") || "none"} | ${t.hooks.join("<br>") || "none"} | ${t.denied} |`),
  "",
];
writeFileSync(path.join(DEST, "README.md"), md.join("\n"));
process.stdout.write(md.join("\n"));
