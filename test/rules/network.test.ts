import { describe, expect, it } from "vitest";
import type { NetInterface } from "../../src/domain/model.js";
import { interfaceRules as interfaceRulesWithOrigin, vsockRules as vsockRulesWithOrigin } from "../../src/rules/network.js";
import type { Rule } from "../../src/ir.js";
import { baseDomain, expectPathError, ruleContext, withoutOrigins } from "./fixtures.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const interfaceRules = withoutOrigins(interfaceRulesWithOrigin);
const vsockRules = withoutOrigins(vsockRulesWithOrigin);

const nets = (type: string, ...interfaces: NetInterface[]) =>
  interfaceRules(ruleContext(baseDomain({ type, devices: { interfaces } })));
const r = (path: string, source: string): Rule => ({ path, suffix: "", perms: "rw", source });
const virtio = (type: string, extra: Partial<NetInterface> = {}): NetInterface => ({ type, model: "virtio", ...extra });

describe("interfaces", () => {
  it("grants /dev/vhost-net once for many virtio NICs on kvm, naming the first", () => {
    expect(nets("kvm", { type: "network", model: "e1000" }, virtio("bridge"), virtio("network"), virtio("direct"))).toEqual([
      r("/dev/vhost-net", "interface 1 vhost-net"),
    ]);
  });

  it("grants vhost-net for transitional virtio models and ethernet", () => {
    expect(nets("kvm", virtio("ethernet", { model: "virtio-non-transitional" }))).toEqual([r("/dev/vhost-net", "interface 0 vhost-net")]);
    expect(nets("kvm", virtio("bridge", { model: "virtio-transitional" }))).toEqual([r("/dev/vhost-net", "interface 0 vhost-net")]);
  });

  it("grants no vhost-net on qemu (TCG) domains, with driver qemu, without a virtio model, or for user NICs", () => {
    expect(nets("qemu", virtio("bridge"))).toEqual([]);
    expect(nets("kvm", virtio("bridge", { driver: "qemu" }))).toEqual([]);
    expect(nets("kvm", { type: "bridge" }, { type: "bridge", model: "rtl8139" }, virtio("user"))).toEqual([]);
  });

  it("grants driver name='vhost' like the default", () => {
    expect(nets("kvm", virtio("bridge", { driver: "vhost" }))).toEqual([r("/dev/vhost-net", "interface 0 vhost-net")]);
  });

  it("uses backend overrides instead of the default devices", () => {
    expect(
      nets(
        "kvm",
        virtio("ethernet", { backendTap: "/dev/net/tun-alt", backendVhost: "/dev/vhost-net-alt" }),
        virtio("bridge"),
      ),
    ).toEqual([
      r("/dev/vhost-net-alt", "interface 0 backend vhost"),
      r("/dev/net/tun-alt", "interface 0 backend tap"),
      r("/dev/vhost-net", "interface 1 vhost-net"),
    ]);
  });

  it("grants vhost-user sockets and vDPA devices", () => {
    expect(
      nets(
        "kvm",
        virtio("vhostuser", { socket: "/run/openvswitch/vhu0" }),
        virtio("vdpa", { vdpaDev: "/dev/vhost-vdpa-0" }),
      ),
    ).toEqual([r("/run/openvswitch/vhu0", "interface 0 vhostuser"), r("/dev/vhost-vdpa-0", "interface 1 vdpa")]);
  });

  it("rejects relative or missing paths", () => {
    expectPathError(() => nets("kvm", virtio("vhostuser", { socket: "vhu0" })), "vhu0", "interface 0 vhostuser: path is not absolute");
    expectPathError(() => nets("kvm", virtio("vhostuser")), "interface 0 vhostuser", "missing vhost-user socket path");
    expectPathError(() => nets("kvm", virtio("vdpa")), "interface 0 vdpa", "missing vDPA device path");
    expectPathError(() => nets("kvm", virtio("bridge", { backendVhost: "vhost" })), "vhost", "interface 0 backend vhost: path is not absolute");
  });
});

describe("vsock", () => {
  it("grants /dev/vhost-vsock", () => {
    expect(vsockRules(ruleContext(baseDomain({ devices: { vsocks: [{ model: "virtio" }] } })))).toEqual([r("/dev/vhost-vsock", "vsock")]);
    expect(vsockRules(ruleContext(baseDomain()))).toEqual([]);
  });
});
