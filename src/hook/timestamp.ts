/**
 * `new Date(ms).toISOString()` for the hook's log lines, computed from the number alone. V8's
 * toISOString asks ICU for the host's time zone on its first call in a process (it reads
 * /etc/localtime and ICU's zone data: ≈ 0.5–0.8 ms, docs/performance.md), although a UTC stamp
 * never needs it; every hook call writes one stamped line, and most write nothing else with a date.
 * Same text as toISOString for every integer ms in the years 0000–9999 (test/hook/timestamp.test.ts);
 * outside them toISOString itself answers.
 */
export function isoTimestamp(ms: number): string {
  const DAY = 86_400_000;
  const days = Math.floor(ms / DAY);
  const inDay = ms - days * DAY;
  // Days since 1970-01-01 → proleptic Gregorian date (H. Hinnant, "chrono-Compatible Low-Level
  // Date Algorithms", civil_from_days): eras of 400 years, years starting on March 1st.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (!Number.isInteger(ms) || year < 0 || year > 9999) return new Date(ms).toISOString();
  const p = (n: number, width: number) => String(n).padStart(width, "0");
  const h = Math.floor(inDay / 3_600_000);
  const m = Math.floor(inDay / 60_000) % 60;
  const s = Math.floor(inDay / 1000) % 60;
  return `${p(year, 4)}-${p(month, 2)}-${p(day, 2)}T${p(h, 2)}:${p(m, 2)}:${p(s, 2)}.${p(inDay % 1000, 3)}Z`;
}
