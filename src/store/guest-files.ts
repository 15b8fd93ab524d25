import type { Layout } from "../layout.js";
import { nodeCrypto } from "../lazy.js";

/**
 * Where one guest's files live, as real paths (mapped through the layout), plus their host
 * names for messages. The per-guest profile and the `.files` sit in /etc/apparmor.d/libvirt/;
 * our record of what we generated sits in /var/lib/virt-aa-hook/<uuid>.json.
 */
export interface GuestPaths {
  uuid: string;
  profileName: string;
  /** Host paths, for messages and rules. */
  hostProfile: string;
  hostFiles: string;
  hostState: string;
  hostLock: string;
  /** Who an admin-edited profile kept at release belongs to (survives the state record). */
  hostKept: string;
  /** Real paths. */
  profile: string;
  files: string;
  state: string;
  lock: string;
  kept: string;
  profilesDir: string;
  /** Prefix of this guest's staging directories inside profilesDir (dot: the parser skips them). */
  stagePrefix: string;
}

export function guestPaths(layout: Layout, uuid: string): GuestPaths {
  const hostState = `${layout.stateDir}/${uuid}.json`;
  const hostLock = `${layout.lockDir}/${uuid}.lock`;
  const hostKept = `${layout.stateDir}/kept/${uuid}.json`;
  return {
    uuid,
    profileName: layout.profileName(uuid),
    hostProfile: layout.profilePath(uuid),
    hostFiles: layout.filesPath(uuid),
    hostState,
    hostLock,
    hostKept,
    profile: layout.host(layout.profilePath(uuid)),
    files: layout.host(layout.filesPath(uuid)),
    state: layout.host(hostState),
    lock: layout.host(hostLock),
    kept: layout.host(hostKept),
    profilesDir: layout.host(layout.profilesDir),
    stagePrefix: `.virt-aa-hook-stage-${uuid}-`,
  };
}

/** Real path of the host-wide lock (store/lock.ts withHostLock). */
export function hostLockPath(layout: Layout): string {
  return layout.host(`${layout.lockDir}/host.lock`);
}

/** The include target the per-guest profile uses for its `.files` (relative to the apparmor dir). */
export function filesInclude(uuid: string): string {
  return `libvirt/libvirt-${uuid}.files`;
}

/** node:crypto is loaded only by the calls that hash (src/lazy.ts). */
export function sha256(data: string | Buffer): string {
  return nodeCrypto().createHash("sha256").update(data).digest("hex");
}
