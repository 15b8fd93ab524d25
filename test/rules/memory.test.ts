import { describe, expect, it } from "vitest";
import type { MemoryDevice, Shmem } from "../../src/domain/model.js";
import { memoryDeviceRules as memoryDeviceRulesWithOrigin, shmemRules as shmemRulesWithOrigin } from "../../src/rules/memory.js";
import { baseDomain, expectPathError, ruleContext, withoutOrigins } from "./fixtures.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const memoryDeviceRules = withoutOrigins(memoryDeviceRulesWithOrigin);
const shmemRules = withoutOrigins(shmemRulesWithOrigin);

const shm = (...shmems: Shmem[]) => shmemRules(ruleContext(baseDomain({ devices: { shmems } })));
const mems = (...memoryDevices: MemoryDevice[]) => memoryDeviceRules(ruleContext(baseDomain({ devices: { memoryDevices } })));
const rw = (path: string, source: string) => ({ path, suffix: "", perms: "rw", source });

describe("shmem", () => {
  it("grants /dev/shm/<name> without a server, the server socket with one", () => {
    expect(
      shm(
        { name: "looking-glass", model: "ivshmem-plain", hasServer: false },
        { name: "bell", model: "ivshmem-doorbell", hasServer: true, serverPath: "/run/ivshmem/bell.sock" },
        { name: "bell2", model: "ivshmem-doorbell", hasServer: true },
      ),
    ).toEqual([
      rw("/dev/shm/looking-glass", "shmem looking-glass"),
      rw("/run/ivshmem/bell.sock", "shmem bell server"),
      rw("/var/lib/libvirt/shmem-bell2-sock", "shmem bell2 server"),
    ]);
  });

  it("rejects names that are not one file name component, and relative server paths", () => {
    for (const name of ["../etc/passwd", "a/b", ".", "..", ""]) {
      expectPathError(() => shm({ name, hasServer: false }), name, "shmem: shmem name must be a single file name component");
      expectPathError(() => shm({ name, hasServer: true }), name, "shmem: shmem name must be a single file name component");
    }
    expectPathError(() => shm({ name: "x", hasServer: true, serverPath: "sock" }), "sock", "shmem x server: path is not absolute");
  });
});

describe("memory devices", () => {
  it("grants nvdimm and virtio-pmem backing paths read-write, nothing for RAM-backed models", () => {
    expect(
      mems(
        { model: "dimm" },
        { model: "nvdimm", path: "/var/lib/libvirt/nvdimm/vm1.img" },
        { model: "virtio-mem" },
        { model: "virtio-pmem", path: "/dev/pmem0" },
      ),
    ).toEqual([rw("/var/lib/libvirt/nvdimm/vm1.img", "memory 1 nvdimm"), rw("/dev/pmem0", "memory 3 virtio-pmem")]);
  });

  it("rejects relative or missing backing paths", () => {
    expectPathError(() => mems({ model: "nvdimm", path: "nv.img" }), "nv.img", "memory 0 nvdimm: path is not absolute");
    expectPathError(() => mems({ model: "virtio-pmem" }), "memory 0 virtio-pmem", "missing <source><path>");
  });
});
