/**
 * The typed domain model: everything in a libvirt domain XML that decides which host files the
 * guest's QEMU may touch, and nothing else. Produced by `parseDomain()` from hostile XML, so every
 * string here has been checked for type and length but NOT yet for path policy (that is `policy/`).
 *
 * Paths are kept exactly as written in the XML (absolute or not); canonicalisation happens later.
 * Optional fields are absent (undefined) when the XML does not carry them.
 */

export interface Domain {
  name: string;
  /** Lower-case canonical UUID (8-4-4-4-12 hex). */
  uuid: string;
  /** Runtime id; present in prepare/start XML, absent in stopped/release XML. */
  id?: number;
  /** `<domain type=...>`: "kvm", "qemu", ... */
  type: string;
  emulator?: string;
  os: OsConfig;
  /** `<sysinfo type='fwcfg'><entry file=...>` files. */
  fwcfgFiles: string[];
  memoryBacking: MemoryBacking;
  seclabels: SecLabel[];
  /** `<launchSecurity type=...>`: "sev", "s390-pv", ... */
  launchSecurity?: string;
  devices: Devices;
  /**
   * Per-guest settings from `<metadata><vah:guest xmlns:vah="https://virt-aa-hook.org/xmlns/guest/1">`
   * (domain/metadata.ts); absent when the domain has none.
   */
  settings?: GuestSettings;
}

/** The domain's own virt-aa-hook settings (docs/metadata.md). */
export interface GuestSettings {
  /** `<vah:mode>`: how this guest's profile is loaded; absent = the config's `mode`. */
  mode?: "enforce" | "complain";
  /** `<vah:allow>` entries, in document order (rule sources count them from 1). */
  allow: AllowedPath[];
}

/** One `<vah:allow path=... access=... tree=.../>`: a path the admin pre-authorises for the guest. */
export interface AllowedPath {
  /** Absolute, as written (canonicalised by the policy like every path). */
  path: string;
  /** "r": read (and lock); "rw": read, write and lock. */
  access: "r" | "rw";
  /** tree="yes": the directory and everything below it. */
  tree: boolean;
}

export interface OsConfig {
  loader?: { path: string; readonly: boolean; type?: string };
  nvram?: {
    path?: string;
    template?: string;
    /** nvram given as a network/file source (libvirt 8.5+) */
    backingStore?: BackingLayer[];
    /** 8.5+ `<nvram type='file|block|network'>`; absent for the old `<nvram>PATH</nvram>` form. */
    type?: string;
    /** `<nvram format=...>` (or the 8.5+ source's `<format type=...>`): "raw" | "qcow2". */
    format?: string;
  };
  kernel?: string;
  initrd?: string;
  dtb?: string;
  /** `<acpi><table type=... >path</table></acpi>` */
  acpiTables: string[];
  shim?: string;
}

export interface MemoryBacking {
  hugepages: boolean;
  /** `<source type='file'|'anonymous'|'memfd'/>` */
  sourceType?: string;
}

export interface SecLabel {
  type?: string; // static | dynamic | none
  model?: string; // apparmor | dac | selinux
  relabel?: boolean;
  label?: string;
}

/** One layer of a disk's backing chain, outermost first (as in `<backingStore>` nesting). */
export interface BackingLayer {
  /** "file" | "block" | "dir" | "network" | "volume" | ... ; a network layer has no path. */
  type: string;
  path?: string;
  format?: string;
  /** `<source><dataStore>` of this layer: a qcow2 layer's external data file. */
  dataStore?: BackingLayer;
}

export interface Disk {
  type: string; // file | block | dir | network | volume | nvme | vhostuser
  device: string; // disk | cdrom | floppy | lun
  /** Local source path (file/dev/dir), or vhost-user socket path; absent for network/volume/empty cdrom. */
  path?: string;
  format?: string;
  readonly: boolean;
  shareable: boolean;
  /** Target device name (vda, sdb, ...), for rule sources. */
  target?: string;
  /**
   * The chain from `<backingStore>` when the XML has one: `undefined` means the XML said nothing
   * (read image headers); `[]` means `<backingStore/>` (explicitly no backing).
   */
  backingStore?: BackingLayer[];
  /** `<source><dataStore>` (libvirt 10+) external data file. */
  dataStore?: BackingLayer;
  /** `<source><reservations><source type='unix' path=...>` persistent reservation socket. */
  reservationsSocket?: string;
  /** type='volume': `<source pool=... volume=...>` (hook XML does not translate it to a path). */
  volume?: { pool: string; volume: string };
  /** type='nvme': `<source type='pci'><address domain bus slot function/>` of the NVMe controller. */
  nvmeAddress?: PciAddress;
}

export interface PciAddress {
  domain: number;
  bus: number;
  slot: number;
  function: number;
}

export interface Filesystem {
  type: string; // mount | file | block | ram | bind
  driver?: string; // path | virtiofs | loop | nbd
  accessmode?: string;
  source?: string;
  target?: string;
  readonly: boolean;
  /** virtiofs: `<source socket=...>` for an externally launched virtiofsd. */
  socket?: string;
}

/** A character-device backend (`<serial type=...><source .../>`) wherever it appears. */
export interface Chardev {
  /** Element that carries it, for rule sources: "serial 0", "channel org.qemu.guest_agent.0", "rng 0 egd" ... */
  source: string;
  type: string; // pty | file | dev | pipe | unix | tcp | udp | null | vc | stdio | spicevmc | spiceport | qemu-vdagent | nmdm
  path?: string;
  mode?: string; // unix, tcp: bind | connect
  /** tcp: `<source tls='yes|no'>`; absent = qemu.conf's chardev_tls decides (rules/tls.ts). */
  tls?: string;
  /** `<log file=... append=...>` */
  logFile?: string;
}

export interface Graphics {
  type: string; // vnc | spice | sdl | egl-headless | rdp | dbus
  /** vnc/spice `socket=` attribute and `<listen type='socket' socket=...>` values. */
  sockets: string[];
  /** `<gl enable='yes' rendernode=...>` or `<graphics type='egl-headless'><gl rendernode=...>` */
  glRendernode?: string;
  glEnabled: boolean;
}

export interface Video {
  model?: string;
  accel3d: boolean;
  /** `<driver name='vhostuser'/>` with external vhost-user-gpu */
  vhostUser: boolean;
  rendernode?: string;
}

export interface Input {
  type: string; // mouse | tablet | keyboard | passthrough | evdev
  /** passthrough/evdev `<source evdev=... dev=...>` */
  dev?: string;
}

export interface NetInterface {
  type: string; // network | bridge | direct | ethernet | user | vhostuser | hostdev | vdpa ...
  model?: string;
  /** `<driver name='vhost'|'qemu'>` */
  driver?: string;
  /** vhostuser socket path */
  socket?: string;
  /** vdpa device path (`<source dev='/dev/vhost-vdpa-0'/>`) */
  vdpaDev?: string;
  /** `<backend tap=... vhost=...>` overrides */
  backendTap?: string;
  backendVhost?: string;
  mac?: string;
  /**
   * `<target dev=...>`: the host-side link. For `type='direct'` the macvtap whose `/dev/tapN`
   * libvirt opens; absent in the XML of `prepare` (libvirt names the link when it creates it).
   */
  targetDev?: string;
  /** `<alias name=...>` (live XML only): libvirt names the passt socket after it. */
  alias?: string;
  /** `<backend type=...>`: "passt" for a passt-backed user/vhostuser interface (libvirt 9.0+). */
  backendType?: string;
}

export interface Rng {
  model?: string;
  backend: string; // random | egd | builtin
  /** backend random device path (default /dev/random when absent) */
  path?: string;
}

export interface Shmem {
  name: string;
  model?: string; // ivshmem-plain | ivshmem-doorbell | ivshmem
  /** ivshmem-doorbell server socket path (libvirt defaults to /var/lib/libvirt/shmem-<name>-sock when <server/> has no path; see rules/memory.ts) */
  serverPath?: string;
  hasServer: boolean;
}

export interface MemoryDevice {
  model: string; // nvdimm | virtio-pmem | dimm | virtio-mem | sgx-epc
  path?: string;
}

export interface Tpm {
  model?: string;
  backend: string; // emulator | passthrough | external
  /** emulator version: "1.2" | "2.0"; absent → libvirt's default (2.0 for most models) */
  version?: string;
  /** passthrough `<device path=...>` (default /dev/tpm0) */
  devicePath?: string;
  /** external backend `<source type='unix' path=...>` */
  socket?: string;
  /** emulator `persistent_state='yes'` keeps state across migrations: irrelevant to rules */
  persistentState?: boolean;
}

export interface Vsock {
  model?: string;
}

export type Hostdev =
  | { type: "usb"; vendor?: string; product?: string; bus?: number; device?: number }
  /** `iommufd`: `<driver iommufd='yes'/>` (libvirt 11.x): the device through `/dev/iommu` and its VFIO cdev. */
  | ({ type: "pci"; driver?: string; iommufd?: boolean } & PciAddress)
  | { type: "scsi"; protocol?: string; adapter?: string; bus?: number; target?: number; unit?: number }
  | { type: "scsi_host"; wwpn?: string }
  | { type: "mdev"; uuid: string; model?: string }
  /** `<hostdev mode='capabilities' type='storage|misc|net'>` */
  | { type: "caps"; capsType: string; block?: string; char?: string };

/** `<pstore backend='acpi-erst'>` (libvirt 10+): the file QEMU keeps the guest's error records in. */
export interface Pstore {
  backend: string;
  /** `<path>`: required by libvirt. */
  path: string;
}

/** `<smartcard mode='host'|'host-certificates'>` (passthrough smartcards are chardevs). */
export interface Smartcard {
  mode: "host" | "host-certificates";
  /** host-certificates `<database>`: the NSS database directory; absent = libvirt's /etc/pki/nssdb. */
  database?: string;
}

/** `<graphics type='dbus'>`: QEMU's D-Bus display. */
export interface DbusDisplay {
  /** `p2p='yes'`: libvirt passes QEMU a connected socket pair, no bus. */
  p2p: boolean;
  /** `address='unix:path=...'`: the bus to connect to instead of libvirt's per-guest bus. */
  address?: string;
}

export interface Devices {
  disks: Disk[];
  filesystems: Filesystem[];
  /** serial, parallel, console, channel, and chardevs embedded in smartcard/redirdev/rng egd. */
  chardevs: Chardev[];
  graphics: Graphics[];
  videos: Video[];
  inputs: Input[];
  interfaces: NetInterface[];
  rngs: Rng[];
  shmems: Shmem[];
  memoryDevices: MemoryDevice[];
  tpms: Tpm[];
  vsocks: Vsock[];
  hostdevs: Hostdev[];
  pstores: Pstore[];
  smartcards: Smartcard[];
  dbusDisplays: DbusDisplay[];
}
