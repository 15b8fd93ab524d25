/**
 * `--since` as an admin types it (docs/denials.md): a time of day or date in ISO form, local time
 * unless it says its zone (`2026-12-05`, `2026-12-05 10:19`, `2026-12-05T10:19:13Z`,
 * `...+01:00`), seconds since the epoch (`@1796465953`), or a duration back from now (`10min`,
 * `10 min ago`, `90s`, `2h`, `1d`, `1 day ago`). Returns epoch seconds, or undefined when the
 * text is none of those.
 */
const UNITS: Record<string, number> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3600, hour: 3600, d: 86400, day: 86400 };
const RELATIVE = /^(\d{1,9})\s*([a-z]+?)s?(?:\s+ago)?$/;
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/;

export function parseSince(text: string, nowMs: number): number | undefined {
  const t = text.trim().toLowerCase();
  const epoch = /^@(\d{1,12}(?:\.\d{1,9})?)$/.exec(t);
  if (epoch) return Number(epoch[1]);
  const rel = RELATIVE.exec(t);
  if (rel) {
    const unit = UNITS[rel[2]!];
    return unit === undefined ? undefined : nowMs / 1000 - Number(rel[1]) * unit;
  }
  const iso = ISO.exec(text.trim().toUpperCase());
  if (!iso) return undefined;
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "0", zone] = iso;
  const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number(`0.${frac}`) * 1000] as const;
  if (fields[1] > 11 || fields[2] < 1 || fields[2] > 31 || fields[3] > 23 || fields[4] > 59 || fields[5] > 60) return undefined;
  let ms: number;
  if (zone === undefined) ms = new Date(...fields).getTime();
  else {
    ms = Date.UTC(...fields);
    if (zone !== "Z") {
      const z = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
      ms -= (z[1] === "-" ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3])) * 60_000;
    }
  }
  return Number.isNaN(ms) ? undefined : ms / 1000;
}
