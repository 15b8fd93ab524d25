import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GuestError } from "../../src/errors.js";
import { parseDomain } from "../../src/domain/index.js";

const kitchenSink = readFileSync(new URL("../fixtures/domains/kitchen-sink.xml", import.meta.url), "utf8");

/** parseDomain either returns a model or throws a GuestError; anything else is a crash. */
function outcome(xml: string | Buffer): "ok" | "rejected" {
  try {
    parseDomain(xml);
    return "ok";
  } catch (err) {
    if (err instanceof GuestError) return "rejected";
    throw err;
  }
}

describe("robustness", () => {
  it("never crashes on arbitrary text or bytes", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 300 }), (s) => outcome(s) !== undefined), { numRuns: 300 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => outcome(Buffer.from(b)) !== undefined), { numRuns: 300 });
  });

  it("never crashes on a real domain cut, spliced or with markup inserted", () => {
    const markup = fc.constantFrom("<", ">", "/>", "</disk>", "<disk>", "'", '"', "&", "&amp;", "&#0;", "<!--", "]]>", "<source file='/x'/>", "<uuid>x</uuid>", "\u0000");
    fc.assert(
      fc.property(fc.nat(kitchenSink.length), fc.nat(kitchenSink.length), markup, (a, b, insert) => {
        const [from, to] = a <= b ? [a, b] : [b, a];
        outcome(kitchenSink.slice(0, from) + insert + kitchenSink.slice(to));
        outcome(kitchenSink.slice(0, from));
      }),
      { numRuns: 400 },
    );
  });

  it("parses a 500-disk domain with backing chains in one pass (time logged, not asserted)", () => {
    const disks = Array.from({ length: 500 }, (_, i) => {
      const dev = `vd${i}`;
      return `
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/libvirt/images/disk-${i}.qcow2' index='${2 * i + 2}'/>
      <backingStore type='file' index='${2 * i + 1}'>
        <format type='qcow2'/>
        <source file='/var/lib/libvirt/images/base-${i % 7}.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='${dev}' bus='virtio'/>
      <alias name='virtio-disk${i}'/>
      <address type='pci' domain='0x0000' bus='0x${(i >> 5).toString(16).padStart(2, "0")}' slot='0x${(i & 31).toString(16).padStart(2, "0")}' function='0x0'/>
    </disk>`;
    }).join("");
    const xml = `<domain type='kvm' id='1'><name>big</name><uuid>0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0</uuid><devices>${disks}</devices></domain>`;
    parseDomain(xml); // warm-up: the first call includes JIT compilation
    const start = performance.now();
    const domain = parseDomain(xml);
    const ms = performance.now() - start;
    console.log(`domain: 500-disk domain (${(xml.length / 1024).toFixed(0)} KiB) parsed in ${ms.toFixed(1)} ms (warm)`);
    expect(domain.devices.disks).toHaveLength(500);
    expect(domain.devices.disks[499]).toStrictEqual({
      type: "file",
      device: "disk",
      path: "/var/lib/libvirt/images/disk-499.qcow2",
      format: "qcow2",
      readonly: false,
      shareable: false,
      target: "vd499",
      backingStore: [{ type: "file", path: "/var/lib/libvirt/images/base-2.qcow2", format: "qcow2" }],
    });
  });
});
