import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["test/setup/tmpdir.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    projects: [
      // Everything that works in temporary roots (and the VM suites) first. vitest runs one file at a
      // time on 2 cores (availableParallelism - 1 workers): CI's wall time is the sum of the files.
      {
        extends: true,
        test: { name: "unit", include: ["test/**/*.test.ts"], exclude: ["test/system/**", "test/fleet/**", "test/package/**", "test/ansible/**"], sequence: { groupOrder: 0 } },
      },
      // Then the system suite alone: it installs virt-aa-hook into this machine's /etc, which
      // other suites copy (/etc/apparmor.d) and must see as it was.
      {
        extends: true,
        test: { name: "system", include: ["test/system/**/*.test.ts"], sequence: { groupOrder: 1 } },
      },
      // Then the fleet (two libvirtd hosts in namespaces, test/fleet), alone: its hosts copy this
      // machine's /etc/libvirt and /etc/apparmor.d, which the system suite and the package change
      // while they run, and it refuses to start next to an installed virt-aa-hook.
      {
        extends: true,
        test: { name: "fleet", include: ["test/fleet/**/*.test.ts"], sequence: { groupOrder: 2 } },
      },
      // Then the Debian package (dpkg -i/-r/-P on this machine), alone and after the system suite:
      // both install into /etc/libvirt; groups run one after another.
      {
        extends: true,
        test: { name: "package", include: ["test/package/**/*.test.ts"], sequence: { groupOrder: 3 } },
      },
      // Last, the Ansible role: it installs the same package with ansible-playbook and starts
      // libvirtd, so it runs after (never beside) the package and system suites.
      {
        extends: true,
        test: { name: "ansible", include: ["test/ansible/**/*.test.ts"], sequence: { groupOrder: 4 } },
      },
    ],
  },
});
