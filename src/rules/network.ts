import { PathError } from "../errors.js";
import type { Domain, NetInterface } from "../domain/model.js";
import type { OriginRule } from "../ir.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { absolute } from "./absolute.js";
import { listDirectory, readAttribute } from "../host/sysfs.js";
import { domainShortName } from "./runtime.js";
import { requireFileNameComponent } from "./names.js";

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
        rules.push(rule(absolute(net.backendVhost), "rw", `interface ${i} backend vhost`));
      } else if (!vhostNetGranted) {
        // One rule for all NICs: the source names the first NIC that needs it.
        rules.push(rule("/dev/vhost-net", "rw", `interface ${i} vhost-net`));
        vhostNetGranted = true;
      }
    }
    if (net.backendTap !== undefined && TAP_TYPES.has(net.type)) {
      rules.push(rule(absolute(net.backendTap), "rw", `interface ${i} backend tap`));
    }
    if (net.type === "direct") rules.push(...macvtapRules(ctx, net, i));
    if (net.backendType === "passt") rules.push(...passtRules(ctx, net, i));
    rules.push(...backendPathRules(net, i));
  });
  return rules;
};

/**
 * `type='direct'` (macvtap): libvirt creates the macvtap link, opens its character device
 * `/dev/tap<ifindex>` and passes the descriptor to QEMU as `-netdev tap,fd=N`
 * (qemu_interface.c qemuInterfaceDirectConnect → virnetdevmacvlan.c
 * virNetDevMacVLanCreateWithVPortProfile → virNetDevMacVLanTapOpen, which builds
 * "/dev/tap%d" from virNetDevGetIndex). AppArmor revalidates descriptors QEMU inherits across the
 * exec into its profile (and that it receives on hotplug) and replaces those the profile does not
 * allow, so the node needs `rw`. virt-aa-helper grants nothing for it (a libvirt-labelled QEMU
 * gets it through AppArmorSetFDLabel).
 *
 * N is read from sysfs, never from the XML: the link named by `<target dev>` must be a macvtap
 * (`/sys/class/net/<dev>/macvtap/tap<N>`, the tap's class device, with `ifindex` N). The rule is
 * bound to that node (origin device), and the policy grants `/dev/tapN` to no other rule, so no
 * element can name another guest's macvtap node. Without `<target dev>` (the `prepare` XML of a
 * guest whose link libvirt has not created yet) or without that link (not created yet) there is
 * nothing to grant yet; libvirt creates the link before the `start` hook, whose XML names it.
 * A user-chosen name that already exists is refused by libvirt at start (EEXIST), names with
 * libvirt's `macvtap`/`macvlan` prefix are dropped from inactive XML.
 */
function macvtapRules(ctx: RuleContext, net: NetInterface, i: number): OriginRule[] {
  if (net.targetDev === undefined) return [];
  const source = `interface ${i} macvtap ${net.targetDev}`;
  // A link name is one path component (IFNAMSIZ 16 incl. NUL); anything else is not a link.
  if (!/^[^/\0\s]{1,15}$/.test(net.targetDev) || net.targetDev === "." || net.targetDev === "..") {
    throw new PathError(source, "invalid network interface name");
  }
  const dir = `${ctx.fs.layout.sysfsClassDir}/net/${net.targetDev}`;
  const taps = listDirectory(ctx.fs, `${dir}/macvtap`)?.filter((e) => /^tap[0-9]+$/.test(e));
  if (taps === undefined) return [];
  const ifindex = readAttribute(ctx.fs, `${dir}/ifindex`);
  if (taps.length !== 1 || ifindex === undefined || taps[0] !== `tap${ifindex}`) {
    throw new PathError(dir, `${source}: expected one tap<ifindex> entry in macvtap/ (found ${taps.join(", ") || "none"}, ifindex ${ifindex ?? "unreadable"})`);
  }
  const node = `/dev/${taps[0]}`;
  return [ruleOf("net", node)(node, "rw", source)];
}

/**
 * `<backend type='passt'/>` (libvirt 9.0+): libvirt starts passt with
 * `--socket <passtStateDir>/<id>-<short name>-<alias>.socket` and QEMU connects to it
 * (qemu_passt.c qemuPasstCreateSocketPath, qemuPasstAddNetProps: `server: false`; passtStateDir is
 * `<state dir>/passt`, /run/libvirt/qemu/passt). `rw` on the socket only; passt's pid file is
 * libvirt's. The alias (`net0`...) is in the live XML of `start`, not in `prepare`'s: without it
 * there is nothing to grant yet. The policy grants `/run/libvirt/qemu/passt/` entries only with
 * this guest's `<id>-<short name>-` prefix.
 */
function passtRules(ctx: RuleContext, net: NetInterface, i: number): OriginRule[] {
  const short = domainShortName(ctx.domain);
  if (short === undefined || net.alias === undefined) return [];
  const alias = requireFileNameComponent(net.alias, `interface ${i} alias`);
  return [rule(`${ctx.layout.libvirtRunDir}/passt/${short}-${alias}.socket`, "rw", `interface ${i} passt`)];
}

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
      // passt as the vhost-user backend (libvirt 11.x): the socket is passt's (passtRules).
      if (net.backendType === "passt" && net.socket === undefined) return [];
      if (net.socket === undefined) throw new PathError(source, "missing vhost-user socket path");
      return [rule(absolute(net.socket), "rw", source)];
    }
    case "vdpa": {
      const source = `interface ${i} vdpa`;
      if (net.vdpaDev === undefined) throw new PathError(source, "missing vDPA device path");
      return [rule(absolute(net.vdpaDev), "rw", source)];
    }
    default:
      return [];
  }
}
