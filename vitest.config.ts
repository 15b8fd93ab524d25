import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/setup/tmpdir.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // System and enforcement suites drive daemons and VMs; they must not overlap with each other.
    fileParallelism: true,
  },
});
