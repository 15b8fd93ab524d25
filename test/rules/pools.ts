/** Pool definitions and started-pool sysfs under a temp root, for the volume tests (and the corpus). */
import { writeHostFile } from "./fixtures.js";
import { link, mkdir } from "./hosttree.js";

/**
 * Pool definitions of every type libvirt's storage driver has, as `virsh pool-dumpxml` writes
 * them (trimmed to what decides a volume's path), and the sysfs a started pool leaves behind.
 */
export const POOLS: Record<string, string> = {
  default: "<pool type='dir'><name>default</name><target><path>/var/lib/libvirt/images</path></target></pool>",
  fspool: "<pool type='fs'><name>fspool</name><source><device path='/dev/sdd1'/><format type='ext4'/></source><target><path>/srv/fspool</path></target></pool>",
  nfs: "<pool type='netfs'><name>nfs</name><source><host name='nfs.example.com'/><dir path='/exports/vms'/><format type='nfs'/></source><target><path>/mnt/nfs/</path></target></pool>",
  vz: "<pool type='vstorage'><name>vz</name><source><name>cluster1</name></source><target><path>/mnt/vz</path></target></pool>",
  lvm: "<pool type='logical'><name>lvm</name><source><device path='/dev/sdb1'/><name>vg_guests</name><format type='lvm2'/></source><target><path>/dev/vg_guests</path></target></pool>",
  zpool: "<pool type='zfs'><name>zpool</name><source><name>tank/vms</name></source></pool>",
  sdc: "<pool type='disk'><name>sdc</name><source><device path='/dev/sdc'/><format type='gpt'/></source><target><path>/dev</path></target></pool>",
  nvme: "<pool type='disk'><name>nvme</name><source><device path='/dev/nvme1n1'/><format type='gpt'/></source><target><path>/dev</path></target></pool>",
  loop: "<pool type='disk'><name>loop</name><source><device path='/dev/loop1'/><format type='gpt'/></source><target><path>/dev</path></target></pool>",
  md: "<pool type='disk'><name>md</name><source><device path='/dev/md1'/><format type='gpt'/></source><target><path>/dev</path></target></pool>",
  byid: "<pool type='disk'><name>byid</name><source><device path='/dev/disk/by-id/wwn-0x5000c500a1b2c3d4'/></source><target><path>/dev/disk/by-id</path></target></pool>",
  san: "<pool type='iscsi'><name>san</name><source><host name='192.0.2.10' port='3260'/><device path='iqn.2004-04.com.example:storage.lun1'/></source><target><path>/dev/disk/by-path</path></target></pool>",
  hba: "<pool type='scsi'><name>hba</name><source><adapter type='scsi_host' name='host3'/></source><target><path>/dev/disk/by-path</path></target></pool>",
  vhba: "<pool type='scsi'><name>vhba</name><source><adapter type='fc_host' parent='scsi_host5' wwnn='20000000c9831b4b' wwpn='10000000c9831b4b'/></source><target><path>/dev/disk/by-path</path></target></pool>",
  mp: "<pool type='mpath'><name>mp</name><target><path>/dev/mapper</path></target></pool>",
  ceph: "<pool type='rbd'><name>ceph</name><source><name>rbdpool</name><host name='mon1.example.com' port='6789'/><auth username='libvirt' type='ceph'><secret uuid='2ec115d7-3a88-3ceb-bc12-0ac909a6fd87'/></auth></source></pool>",
  gv: "<pool type='gluster'><name>gv</name><source><host name='gluster.example.com'/><dir path='/'/><name>gv0</name></source></pool>",
  sheep: "<pool type='sheepdog'><name>sheep</name><source><name>sheep</name><host name='localhost' port='7000'/></source></pool>",
  direct: "<pool type='iscsi-direct'><name>direct</name><source><host name='192.0.2.10'/><device path='iqn.2004-04.com.example:storage.lun1'/><initiator><iqn name='iqn.2013-06.com.example:client'/></initiator></source></pool>",
};

/** A root with every pool defined and the sysfs of started iscsi/scsi/fc/mpath pools (plus decoys). */
export function poolRoot(root: string): void {
  for (const [name, xml] of Object.entries(POOLS)) writeHostFile(root, `/etc/libvirt/storage/${name}.xml`, xml);
  // iSCSI: session1 is the pool's target on SCSI host 2; session2 is another target on host 4.
  writeHostFile(root, "/sys/class/iscsi_session/session1/targetname", "iqn.2004-04.com.example:storage.lun1\n");
  mkdir(root, "/sys/class/iscsi_session/session1/device/target2:0:0");
  mkdir(root, "/sys/bus/scsi/devices/2:0:0:1/block/sdf");
  writeHostFile(root, "/sys/class/iscsi_session/session2/targetname", "iqn.2004-04.com.example:other\n");
  mkdir(root, "/sys/class/iscsi_session/session2/device/target4:0:0");
  mkdir(root, "/sys/bus/scsi/devices/4:0:0:1/block/sdz");
  // scsi pool on host3; an fc_host vHBA on host6.
  mkdir(root, "/sys/bus/scsi/devices/3:0:1:0/block/sdg");
  writeHostFile(root, "/sys/class/fc_host/host6/port_name", "0x10000000c9831b4b\n");
  writeHostFile(root, "/sys/class/fc_host/host6/node_name", "0x20000000c9831b4b\n");
  mkdir(root, "/sys/bus/scsi/devices/6:0:0:0/block/sdh");
  // multipath map dm-3; dm-1 is an LVM volume.
  writeHostFile(root, "/sys/block/dm-3/dm/uuid", "mpath-3600508b4000156d700012000000b0000\n");
  writeHostFile(root, "/sys/block/dm-1/dm/uuid", "LVM-abcdef\n");
  // LVM's /dev/<vg>/<lv> is a link to the device-mapper node, as udev makes it.
  link(root, "/dev/vg_guests/vm1-root", "../dm-4");
}

