import type { OriginRule } from "../ir.js";
import type { TlsSetting } from "../host/qemu-conf.js";
import { ruleOf, type RuleFamily } from "./context.js";

const rule = ruleOf("tls");

/**
 * The x509 files QEMU reads for one TLS credentials object (crypto/tlscredsx509.c
 * qcrypto_tls_creds_x509_load, crypto/tlscreds.c qcrypto_tls_creds_get_path): the CA certificate
 * and its optional CRL, then the endpoint's certificate and key; a server also its optional
 * Diffie-Hellman parameters. Exact files: QEMU never lists the directory.
 */
const SERVER_FILES = ["ca-cert.pem", "ca-crl.pem", "server-cert.pem", "server-key.pem", "dh-params.pem"];
const CLIENT_FILES = ["ca-cert.pem", "ca-crl.pem", "client-cert.pem", "client-key.pem"];

/**
 * TLS certificates QEMU reads because qemu.conf turns TLS on for something this guest has, read
 * from the cert dir qemu.conf gives that TLS user (`<user>_tls_x509_cert_dir`, else
 * /etc/pki/libvirt-<user> when it exists, else `default_tls_x509_cert_dir`; host/qemu-conf.ts),
 * `r` only, and only when the guest uses that TLS:
 *
 * - `vnc_tls = 1` and a `<graphics type='vnc'>`: server credentials (qemu_command.c
 *   qemuBuildGraphicsVNCCommandLine adds a tls-creds-x509 object with vncTLSx509certdir);
 * - `spice_tls = 1` and a `<graphics type='spice'>`: server credentials (x509-dir=, read by
 *   spice-server for the TLS port libvirt then allocates);
 * - a `<serial|channel|... type='tcp'>` with `<source tls='yes'>`, or without tls= when
 *   `chardev_tls = 1` (qemu_domain.c qemuDomainPrepareChardevSourceTLS): server credentials for
 *   mode='bind', client credentials for mode='connect';
 * - `migrate_tls_force = 1`: every migration uses TLS, so both endpoints' credentials (libvirt
 *   adds the object over QMP when a migration starts, qemu_migration_params.c). Without it, a
 *   migration's TLS is a per-call flag no domain XML shows: not granted (libvirt's abstraction
 *   already lets every guest read the default dir /etc/pki/qemu).
 *
 * Not handled here: NBD disks with TLS (`nbd_tls`, `<source tls=...>` of a network disk: the disk
 * model does not carry the protocol yet) and backup jobs (`backup_tls_x509_cert_dir`: TLS is
 * asked for per backup job, not in the domain XML).
 */
export const tlsRules: RuleFamily = (ctx) => {
  const { qemu, domain } = ctx;
  const out: OriginRule[] = [];
  const add = (setting: TlsSetting, files: readonly string[], source: string) => {
    for (const file of files) out.push(rule(`${setting.certDir}/${file}`, "r", source));
  };
  const graphics = new Set(domain.devices.graphics.map((g) => g.type));
  if (qemu.vncTls.enabled && graphics.has("vnc")) add(qemu.vncTls, SERVER_FILES, "vnc tls");
  if (qemu.spiceTls.enabled && graphics.has("spice")) add(qemu.spiceTls, SERVER_FILES, "spice tls");
  for (const chr of domain.devices.chardevs) {
    if (chr.type !== "tcp") continue;
    const tls = chr.tls === undefined ? qemu.chardevTls.enabled : chr.tls === "yes";
    if (tls) add(qemu.chardevTls, chr.mode === "bind" ? SERVER_FILES : CLIENT_FILES, `${chr.source} tls`);
  }
  if (qemu.migrateTls.enabled) {
    add(qemu.migrateTls, SERVER_FILES, "migration tls");
    add(qemu.migrateTls, CLIENT_FILES.filter((f) => !SERVER_FILES.includes(f)), "migration tls");
  }
  return out;
};
