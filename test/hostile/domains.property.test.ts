/**
 * Property: random domains never crash the hook, never yield a profile the real parser refuses,
 * and never grant anything under a restricted location.
 *
 * Domains are built from the real ones (examples/*.xml, test/fixtures/domains/*.xml): their
 * device elements and <os>/<memoryBacking>/<sysinfo>/... blocks are mixed at random, and their
 * attribute values and path texts are randomly replaced by hostile paths or junk; names and UUIDs
 * come from generators that include newlines, quotes, Unicode and invalid forms.
 *
 * Each domain goes through buildProfile in-process: it must either throw a GuestError whose line
 * is one clean line, or return a profile whose every rule passes an independent restricted-location
 * oracle; every accepted profile is compiled with the real apparmor_parser (`-D rule-exprs`,
 * through the real TEMPLATE.qemu), and no compiled guest rule may match a restricted sample path.
 * A sample of the same documents also goes through the real bundle (`explain -`): exit 0 with the
 * same `.files`, or exit 1 with the same line; never 70 (internal error).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Layout } from "../../src/layout.js";
import { buildProfile, type ProfileBuild } from "../../src/pipeline.js";
import { exprMatches, guestRuleExprs } from "../helpers/apparmor.js";
import { BUNDLE } from "../lifecycle/harness.js";
import {
  announceSeed,
  ERROR_LINE,
  hostilePath,
  isUnder,
  outcomeOf,
  propertyRoot,
  READ_ONLY_EXCEPTIONS,
  RESTRICTED_SAMPLES,
  restrictedViolation,
  seedRuns,
  xmlAttr,
  xmlText,
} from "./arbitraries.js";
import { TEST_NODE } from "../helpers/node.js";

const SEED_FILES = ["examples/basic.xml", "examples/kitchen-sink.xml", ...fs.readdirSync("test/fixtures/domains").map((f) => `test/fixtures/domains/${f}`)];

/** Top-level child elements of the first `<tag>...</tag>` in `xml`, as text. */
function childrenOf(xml: string, tag: string): string[] {
  const start = xml.indexOf(`<${tag}`);
  if (start < 0) return [];
  const open = xml.indexOf(">", start) + 1;
  if (xml[open - 2] === "/") return [];
  const blocks: string[] = [];
  const re = /<(\/?)([A-Za-z][\w:.-]*)(?:\s[^>]*?)?(\/?)>|<!--[\s\S]*?-->/g;
  re.lastIndex = open;
  let depth = 0;
  let from = -1;
  for (let m = re.exec(xml); m !== null; m = re.exec(xml)) {
    if (m[0].startsWith("<!--")) continue;
    const [whole, closing, name, selfClosing] = m;
    if (closing) {
      if (depth === 0 && name === tag) break;
      depth--;
      if (depth === 0) blocks.push(xml.slice(from, m.index + whole.length));
    } else if (selfClosing) {
      if (depth === 0) blocks.push(whole);
    } else {
      if (depth === 0) from = m.index;
      depth++;
    }
  }
  return blocks;
}

const SEEDS = SEED_FILES.map((f) => fs.readFileSync(f, "utf8"));
const DEVICE_BLOCKS = [...new Set(SEEDS.flatMap((x) => childrenOf(x, "devices")))];
const DOMAIN_BLOCKS = [...new Set(SEEDS.flatMap((x) => childrenOf(x, "domain")))].filter((b) => !/^<(name|uuid|devices)[\s>/]/.test(b));

/** Attribute values and path-like texts, in document order (what a mutation may replace). */
const SLOT = /(\s[\w:-]+=')([^']*)(')|(<(?:kernel|initrd|loader|nvram|dtb|block|char|path|table|shim|backend|label|emulator)(?:\s[^>]*)?>)([^<]*)(<)/g;

type Edit = { keep: true } | { value: string };

const junk = fc.oneof(
  fc.constantFrom("", "yes", "no", "on", "0", "-1", "0x10", "99999999999", "unix", "file", "pty", "virtio", "qcow2", "raw", "vmdk", "qed", "block", "dir", "bind", "connect", "emulator", "passthrough", "vfio", "none", "../x"),
  fc.string({ unit: "grapheme", maxLength: 12 }),
);

const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 24, arbitrary: fc.constant({ keep: true } as Edit) },
  { weight: 3, arbitrary: hostilePath.map((value): Edit => ({ value })) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom("/var/lib/libvirt/images/x.img", "/srv/data.img", "/etc/shadow", "/usr/share/OVMF/OVMF_CODE.fd", "/boot/vmlinuz", "/dev/mem", "/proc/self/mem", "/", "/var", "/usr", "/dev", "/sys/devices", "/run/x.sock", "/var/lib/virt-aa-hook")
      .map((value): Edit => ({ value })),
  },
  { weight: 2, arbitrary: junk.map((value): Edit => ({ value })) },
);

/** Apply edits to the successive slots of `block`. */
function mutate(block: string, edits: Edit[]): string {
  let i = 0;
  return block.replace(SLOT, (whole, pre: string | undefined, _v, post: string | undefined, openTag: string | undefined, _t, lt: string | undefined) => {
    const e = edits[i++];
    if (e === undefined || "keep" in e) return whole;
    return pre !== undefined ? `${pre}${xmlAttr(e.value)}${post}` : `${openTag}${xmlText(e.value)}${lt}`;
  });
}

const block = (pool: string[]) => fc.tuple(fc.constantFrom(...pool), fc.array(edit, { maxLength: 10 })).map(([b, edits]) => mutate(b, edits));

const nameArb = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom("web01", "vm-1", "db.primary", "a b", "x'y", 'q"z', "é雪😀", "-", "&", "<x>", "\u2028", "*", "@{HOME}", "{a,b}", "[0-9]", "#c", "a,b", "^x") },
  { weight: 2, arbitrary: fc.constantFrom("..", ".", "a/b", "web\n01", "web\r01", "tab\there", "\u0085") },
  { weight: 4, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom("x".repeat(1024), "x".repeat(1025), "") },
);

const uuidArb = fc.oneof(
  { weight: 30, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.uuid().map((u) => u.toUpperCase()) },
  { weight: 1, arbitrary: fc.uuid().map((u) => u.replaceAll("-", "")) },
  { weight: 1, arbitrary: fc.uuid().map((u) => ` \n${u}\t`) },
  { weight: 1, arbitrary: fc.constantFrom("", "../../etc/passwd", "not-a-uuid", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9fg", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-") },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);

/** Generated documents, as text (one arbitrary so a sample replays from its seed alone). */
const domainDoc = fc
  .record({
    name: nameArb,
    uuid: uuidArb,
    typeAttr: fc.constantFrom("", " type='kvm'", " type='qemu'", " type='xen'", " type='bogus'"),
    idAttr: fc.oneof({ weight: 10, arbitrary: fc.constantFrom("", " id='7'", " id='0'", " id='-1'", " id='2147483647'") }, { weight: 1, arbitrary: fc.constantFrom(" id='abc'", " id='4294967296'") }),
    // At most one block of each kind (<os>, <memoryBacking>...): libvirt has one of each.
    extras: fc.uniqueArray(fc.constantFrom(...DOMAIN_BLOCKS), { maxLength: 4, selector: (b) => /^<([\w:-]+)/.exec(b)![1] }).chain((bs) =>
      fc.tuple(...bs.map((b) => fc.array(edit, { maxLength: 10 }).map((edits) => mutate(b, edits)))),
    ),
    devices: fc.array(block(DEVICE_BLOCKS), { maxLength: 8 }),
    duplicate: fc.oneof({ weight: 18, arbitrary: fc.constant("") }, { weight: 1, arbitrary: fc.constantFrom("<name>dup</name>", "<uuid>11111111-2222-3333-4444-555555555555</uuid>") }),
  })
  .map(
    ({ name, uuid, typeAttr, idAttr, extras, devices, duplicate }) =>
      `<domain${typeAttr}${idAttr}><name>${xmlText(name)}</name><uuid>${xmlText(uuid)}</uuid>${duplicate}${extras.join("")}<devices>${devices.join("")}</devices></domain>`,
  );

let root: string;
let cleanup: () => void;
beforeAll(() => {
  ({ root, cleanup } = propertyRoot());
  announceSeed("domains.property");
});
afterAll(() => cleanup());

type Outcome = { ok: true; built: ProfileBuild } | { ok: false; line: string };

function build(xml: string): Outcome {
  const out = outcomeOf(() => buildProfile(xml, { layout: new Layout(root) }));
  return out.ok ? { ok: true, built: out.value } : { ok: false, line: out.error.toLine() };
}

describe("generators", () => {
  it("draw on every seed document's devices and top-level blocks", () => {
    expect(DEVICE_BLOCKS.length).toBeGreaterThan(50);
    expect(DOMAIN_BLOCKS.some((b) => b.startsWith("<os"))).toBe(true);
    expect(DEVICE_BLOCKS.some((b) => b.startsWith("<hostdev"))).toBe(true);
    // An unmutated seed still builds: the splitter keeps documents well-formed.
    const basic = childrenOf(SEEDS[0]!, "devices").join("");
    expect(build(`<domain type='kvm' id='3'><name>web01</name><uuid>6f1a7c52-3b0e-4d6a-9c2e-5a4b3c2d1e0f</uuid><devices>${basic}</devices></domain>`).ok).toBe(true);
  });
});

describe("property: random domains never crash, always compile, never grant a restricted location", () => {
  for (const run of seedRuns(150, 50)) {
    it(`${run.label}: ${run.numRuns} domains`, async () => {
      const docs = fc.sample(domainDoc, { seed: run.seed, numRuns: run.numRuns });
      const accepted: Array<{ xml: string; built: ProfileBuild }> = [];
      const reasons = new Map<string, number>();
      for (const xml of docs) {
        let out: Outcome;
        try {
          out = build(xml);
        } catch (err) {
          throw new Error(`${run.label}: crash (${(err as Error).stack}) on ${JSON.stringify(xml)}`);
        }
        if (!out.ok) {
          expect(out.line, `${run.label}: ${JSON.stringify(xml)}`).toMatch(ERROR_LINE);
          const key = out.line.replace(/^virt-aa-hook: error: [^:]*: /, "").replace(/^[^:]*: /, "").slice(0, 40);
          reasons.set(key, (reasons.get(key) ?? 0) + 1);
          continue;
        }
        for (const r of out.built.rules) {
          expect(restrictedViolation(r.path, r.perms, r.suffix), `${run.label}: ${JSON.stringify(xml)}`).toBeUndefined();
        }
        // Only comments and rule lines: nothing else reaches the profile.
        for (const line of out.built.filesText.trimEnd().split("\n")) {
          expect(line, `${run.label}: ${JSON.stringify(xml)}`).toMatch(/^(#[^\n]*|  "[^"\n]+" [rwkmlax]+,(  # [^\n]*)?)$/);
        }
        accepted.push({ xml, built: out.built });
      }
      console.log(`domains.property ${run.label}: ${accepted.length}/${docs.length} accepted; top rejections: ${JSON.stringify([...reasons].sort((a, b) => b[1] - a[1]).slice(0, 8))}`);
      // The mix must keep producing profiles, or the parser half of the property proves little.
      expect(accepted.length).toBeGreaterThan(docs.length / 25);

      // Every accepted profile through the real parser, two at a time.
      const baseline = await guestRuleExprs("00000000-0000-0000-0000-000000000000", "");
      const check = async ({ xml, built }: { xml: string; built: ProfileBuild }) => {
        let exprs: string[];
        try {
          exprs = await guestRuleExprs(built.domain.uuid, built.filesText);
        } catch (err) {
          throw new Error(`${run.label}: the parser refused the profile of ${JSON.stringify(xml)}:\n${built.filesText}\n${(err as Error).message}`);
        }
        for (const b of baseline) {
          const at = exprs.indexOf(b);
          if (at >= 0) exprs.splice(at, 1);
        }
        for (const sample of RESTRICTED_SAMPLES) {
          const hits = exprs.filter((e) => exprMatches(e, sample));
          if (hits.length === 0) continue;
          const readOnlyRule = built.rules.some((r) => r.path === sample && [...r.perms].every((c) => "rkm".includes(c)));
          expect(READ_ONLY_EXCEPTIONS.some((loc) => isUnder(sample, loc)) && readOnlyRule, `${run.label}: ${hits.join(" | ")} matches ${sample} for ${JSON.stringify(xml)}`).toBe(true);
        }
      };
      for (let i = 0; i < accepted.length; i += 2) await Promise.all(accepted.slice(i, i + 2).map(check));
    }, 120_000);
  }

  it("a sample through the real bundle gives the same outcome as in-process, never an internal error", () => {
    // Six accepted and six rejected documents of a fixed sample (node start-up is ~150 ms each).
    const outcomes = fc.sample(domainDoc, { seed: 20261130, numRuns: 80 }).map((xml) => ({ xml, expected: build(xml) }));
    const picked = [...outcomes.filter((o) => o.expected.ok).slice(0, 6), ...outcomes.filter((o) => !o.expected.ok).slice(0, 6)];
    expect(picked).toHaveLength(12);
    let ok = 0;
    for (const { xml, expected } of picked) {
      const r = spawnSync(TEST_NODE, [BUNDLE, "explain", "--root", root, "-"], { input: xml, env: { LC_ALL: "C" }, timeout: 10_000 });
      const got = { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
      if (expected.ok) {
        ok++;
        expect(got, JSON.stringify(xml)).toEqual({ status: 0, stdout: expected.built.filesText, stderr: "" });
      } else {
        expect(got, JSON.stringify(xml)).toEqual({ status: 1, stdout: "", stderr: `${expected.line}\n` });
      }
    }
    expect(ok).toBe(6);
  });
});
