import { PathError } from "../errors.js";
import type { Domain, NetInterface } from "../domain/model.js";
import type { OriginRule } from "../ir.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { absolute } from "./absolute.js";

/**
 * `<interface>` and `<vsock>`.
 *
 * libvirt opens `/dev/vhost-net`, `/dev/vhost-vsock`, vDPA nodes and taps itself and passes the
 * descriptors to QEMU; the rules are still needed because AppArmor revalidates descriptors that
 * QEMU inherits across the exec into its profile (and those it receives over the monitor on
 * hotplug) and silently replaces any the profile does not allow.
 */
const rule = ruleOf("net");
const vsockRule = ruleOf("vsock");

export const interfaceRules: RuleFamily = (ctx: RuleContext) => {
  const rules: OriginRule[] = [];
  let vhostNetGranted = false;
  ctx.domain.devices.interfaces.forEach((net, i) => {
    if (usesVhostNet(ctx.domain, net)) {
      if (net.backendVhost !== undefined) {
        rules.push(rule(absolute(net.backendVhost, `interface ${i} backend vhost`), "rw", `interface ${i} backend vhost`));
      } else if (!vhostNetGranted) {
        // One rule for all NICs: the source names the first NIC that needs it.
        rules.push(rule("/dev/vhost-net", "rw", `interface ${i} vhost-net`));
        vhostNetGranted = true;
      }
    }
    if (net.backendTap !== undefined && TAP_TYPES.has(net.type)) {
      rules.push(rule(absolute(net.backendTap, `interface ${i} backend tap`), "rw", `interface ${i} backend tap`));
    }
    rules.push(...backendPathRules(net, i));
  });
  return rules;
};

/** `<vsock>`: one vhost-vsock device (libvirt opens it and passes the descriptor). */
export const vsockRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.vsocks.map(() => vsockRule("/dev/vhost-vsock", "rw", "vsock"));

/** Interface types whose backend is a tap libvirt creates (and may attach a vhost-net to). */
const TAP_TYPES = new Set(["network", "bridge", "ethernet"]);
/** ...plus macvtap (`direct`): the types for which libvirt opens vhost-net (qemuInterfaceOpenVhostNet). */
const VHOST_NET_TYPES = new Set([...TAP_TYPES, "direct"]);
const VIRTIO_MODELS = new Set(["virtio", "virtio-transitional", "virtio-non-transitional"]);

/**
 * libvirt uses in-kernel vhost-net only for virtio NICs of KVM guests on tap/macvtap backends,
 * unless `<driver name='qemu'>` asks for userspace virtio. (virt-aa-helper also grants it for
 * NICs without a model and for user/vhostuser/hostdev types, where nothing opens it.)
 */
function usesVhostNet(domain: Domain, net: NetInterface): boolean {
  return (
    domain.type === "kvm" &&
    VHOST_NET_TYPES.has(net.type) &&
    net.model !== undefined &&
    VIRTIO_MODELS.has(net.model) &&
    net.driver !== "qemu"
  );
}

function backendPathRules(net: NetInterface, i: number): OriginRule[] {
  switch (net.type) {
    case "vhostuser": {
      const source = `interface ${i} vhostuser`;
      if (net.socket === undefined) throw new PathError(source, "missing vhost-user socket path");
      return [rule(absolute(net.socket, source), "rw", source)];
    }
    case "vdpa": {
      const source = `interface ${i} vdpa`;
      if (net.vdpaDev === undefined) throw new PathError(source, "missing vDPA device path");
      return [rule(absolute(net.vdpaDev, source), "rw", source)];
    }
    default:
      return [];
  }
}
