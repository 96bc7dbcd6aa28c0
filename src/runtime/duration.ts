import { z } from 'zod';
import { MAX_TIMER_MS } from './clock.ts';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** What `parseDuration` reads, spaces around included (the JSON Schema's pattern for a duration). */
export const DURATION_PATTERN = '^\\s*(\\d+(\\.\\d+)?(ms|s|m|h|d))+\\s*$';
const DURATION = new RegExp(DURATION_PATTERN);

/** Parses `500ms`, `30s`, `5m`, `1h`, `1d` (or a combination such as `1m30s`) to milliseconds. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  const s = text.trim();
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNITS[m[2]!]!;
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(1)}m`;
  return `${+(ms / 3_600_000).toFixed(1)}h`;
}

/** A zod schema for a duration string, yielding milliseconds; `zero`: whether `0s` is one (to a check of its own after). */
function durationText(zero: boolean): z.ZodPipe<z.ZodString, z.ZodTransform<number, string>> {
  return z
    .string({ error: 'expected a duration such as "500ms", "30s" or "5m"' })
    .meta({ pattern: DURATION_PATTERN })
    .transform((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === undefined || (ms <= 0 && !zero)) {
        ctx.addIssue({ code: 'custom', message: `"${s}" is not a duration such as "500ms", "30s" or "5m"` });
        return z.NEVER;
      }
      return ms;
    });
}

/** A zod schema for a duration string, yielding milliseconds. */
export const durationSchema = durationText(false);

/**
 * The shortest re-observe interval (`--interval`, a goal's or a node's `interval`): every node read
 * again every millisecond is a busy loop, not reconciliation.
 */
export const MIN_INTERVAL_MS = 100;

/** A re-observe interval: a duration of at least `MIN_INTERVAL_MS` (`0s` too is told so). */
export const intervalSchema = durationText(true).refine((ms) => ms >= MIN_INTERVAL_MS, `an interval is at least ${MIN_INTERVAL_MS}ms ("500ms", "30s", "5m")`);

/** A duration string ("30s") or a whole number of milliseconds, yielding milliseconds: for config timeouts. */
export const durationOrMsSchema = z
  .union([durationSchema, z.number().int().positive()], { error: 'expected a duration such as "500ms", "30s" or "5m", or a whole number of milliseconds' })
  // A timeout is one platform timer, which fires at once past its limit: a longer one would kill every command.
  .refine((ms) => ms <= MAX_TIMER_MS, `a timeout is at most 24 days (${MAX_TIMER_MS} ms)`);
