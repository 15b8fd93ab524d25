import { afterEach, describe, expect, it } from "vitest";
import { resolveVolume } from "../../src/rules/volumes.js";
import { baseDomain, expectPathError, ruleContext, tempRoot, writeHostFile } from "./fixtures.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** resolveVolume against a root holding /etc/libvirt/storage/<pool>.xml = `xml`. */
function resolve(xml: string, volume = "disk.img"): () => string {
  const t = tempRoot();
  cleanups.push(t.cleanup);
  writeHostFile(t.root, "/etc/libvirt/storage/p.xml", xml);
  return () => resolveVolume(ruleContext(baseDomain(), t.root), "disk vda", "p", volume);
}

describe("pool definitions, read with the one XML reader", () => {
  it("decodes references and trims the values it reads", () => {
    expect(resolve("<pool type=' dir '><target><path>\n  /srv/a&#x26;b&#47;c&lt;d&gt;  \n</path></target></pool>")()).toBe("/srv/a&b/c<d>/disk.img");
    expect(resolve("<?xml version='1.0'?><!-- by libvirt --><pool type='logical'><source><name>vg&amp;1</name></source></pool>")()).toBe("/dev/vg&1/disk.img");
  });

  it.each([
    ["<pool type='dir'><target><path>/srv/&nbsp;</path></target></pool>", 'is not well-formed XML: unknown entity "&nbsp;"'],
    ["<pool type='dir'><target><path>/srv/&#0;</path></target></pool>", 'is not well-formed XML: character reference "&#0;" is not allowed in XML'],
    ["<pool type='dir'><target><path>/srv/\u001b</path></target></pool>", "is not well-formed XML: character U+001B is not allowed in XML"],
    ["<pool type='dir'><target><path>/srv</path></target>", "is not well-formed XML: malformed XML at line 1, column 1: Unclosed tag 'pool'."],
    ["<pool type='dir'><target><path>/srv</path></target></readonly/></pool>", "is not well-formed XML: malformed XML: end tag </readonly/> at offset 51 does not close <pool>"],
    ["<network type='dir'/>", "has no <pool> element"],
  ])("refuses %j", (xml, why) => {
    expectPathError(resolve(xml), "disk vda", `cannot resolve volume disk.img in pool p: pool definition /etc/libvirt/storage/p.xml ${why}`);
  });
});
