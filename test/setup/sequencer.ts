import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The suites that boot a VM (the lab, then the enforcement VM) start first, the rest in vitest's
 * own order after them. The lab is the longest file by far (most of CI's wall time): started
 * first, every other file runs on the other worker beside it instead of after it. On a fresh CI
 * clone vitest has no duration cache and would order files by size, which put the lab mid-run.
 */
const FIRST = ["/test/lab/", "/test/enforce/"];

function rank(spec: TestSpecification): number {
  const i = FIRST.findIndex((dir) => spec.moduleId.includes(dir));
  return i === -1 ? FIRST.length : i;
}

export class VmFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    // Array.prototype.sort is stable: within a rank, vitest's order stays.
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}
