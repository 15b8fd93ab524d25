import { describe, expect, it } from "vitest";
import { isoTimestamp } from "../../src/hook/timestamp.js";

describe("isoTimestamp (the log's UTC stamp without V8's Date formatting)", () => {
  it("gives toISOString's text at the edges: epoch, leap days, century rules, year ends, 0000 and 9999", () => {
    const edges = [
      0, -1, 1, 86_399_999, 86_400_000,
      Date.UTC(2000, 1, 29, 12, 0, 0, 5), Date.UTC(1900, 1, 28, 23, 59, 59, 999), Date.UTC(1900, 2, 1),
      Date.UTC(2100, 1, 28), Date.UTC(2100, 2, 1), Date.UTC(2024, 1, 29), Date.UTC(1969, 11, 31, 23, 59, 59, 999),
      Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), Date.UTC(1600, 1, 29),
      -62_167_219_200_000, // 0000-01-01T00:00:00.000Z
      253_402_300_799_999, // 9999-12-31T23:59:59.999Z
    ];
    for (const ms of edges) expect(isoTimestamp(ms), String(ms)).toBe(new Date(ms).toISOString());
  });

  it("agrees with toISOString on 200,000 random instants in 0000–9999", () => {
    let seed = 20;
    const next = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 200_000; i++) {
      const ms = Math.floor(-62_167_219_200_000 + next() * (253_402_300_799_999 + 62_167_219_200_000));
      const want = new Date(ms).toISOString();
      if (isoTimestamp(ms) !== want) expect(isoTimestamp(ms), String(ms)).toBe(want);
    }
  });

  it("leaves years outside 0000–9999 and non-integers to toISOString", () => {
    expect(isoTimestamp(-62_167_219_200_001)).toBe("-000001-12-31T23:59:59.999Z");
    expect(isoTimestamp(253_402_300_800_000)).toBe("+010000-01-01T00:00:00.000Z");
    expect(isoTimestamp(1.5)).toBe(new Date(1.5).toISOString());
  });
});
