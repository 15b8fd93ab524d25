/**
 * Domain XML for tests with more than one guest, disks with <readonly/>/<shareable/>, and the
 * attach-related elements (emulator, seclabel). Same shape as harness.ts domainXml.
 */
export interface DiskSpec {
  path: string;
  readonly?: boolean;
  shareable?: boolean;
  /** Backing layers libvirt describes (start XML); `[]` → `<backingStore/>`. */
  backing?: string[];
}

export interface GuestSpec {
  name: string;
  uuid: string;
  id?: number;
  disks: (string | DiskSpec)[];
  emulator?: string;
  /** Raw XML inserted as the last children of <domain> (seclabels). */
  extra?: string;
}

const escapeAttr = (s: string) => s.replace(/&/g, "&amp;").replace(/'/g, "&apos;").replace(/</g, "&lt;");

function backingXml(layers: string[]): string {
  let xml = "<backingStore/>";
  for (const p of [...layers].reverse()) {
    xml = `<backingStore type='file'><format type='raw'/><source file='${escapeAttr(p)}'/>${xml}</backingStore>`;
  }
  return xml;
}

export function guestXml(g: GuestSpec): string {
  const disks = g.disks
    .map((d, i) => {
      const s: DiskSpec = typeof d === "string" ? { path: d } : d;
      return `    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${escapeAttr(s.path)}'/>${s.backing ? `\n      ${backingXml(s.backing)}` : ""}
      <target dev='${i < 26 ? `vd${String.fromCharCode(97 + i)}` : `vdz${i}`}' bus='virtio'/>${s.readonly ? "\n      <readonly/>" : ""}${s.shareable ? "\n      <shareable/>" : ""}
    </disk>`;
    })
    .join("\n");
  return `<domain type='kvm'${g.id !== undefined ? ` id='${g.id}'` : ""}>
  <name>${g.name}</name>
  <uuid>${g.uuid}</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>${g.emulator ?? "/usr/bin/qemu-system-x86_64"}</emulator>
${disks}
  </devices>${g.extra ? `\n  ${g.extra}` : ""}
</domain>
`;
}

export const UUID_A = "aaaaaaaa-1111-4111-8111-111111111111";
export const UUID_B = "bbbbbbbb-2222-4222-8222-222222222222";
export const UUID_C = "cccccccc-3333-4333-8333-333333333333";

export const op = (name: string, operation: string): [string, string, string, string] => [
  name,
  operation,
  operation === "release" || operation === "stopped" ? "end" : "begin",
  "-",
];
