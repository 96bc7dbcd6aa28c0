import { describe, expect, it } from 'vitest';
import { durationOrMsSchema, durationSchema, formatDuration, parseDuration } from '../../src/runtime/index.ts';

describe('parseDuration', () => {
  it.each([
    { name: 'milliseconds', text: '500ms', ms: 500 },
    { name: 'seconds', text: '30s', ms: 30_000 },
    { name: 'minutes', text: '5m', ms: 300_000 },
    { name: 'hours', text: '1h', ms: 3_600_000 },
    { name: 'days', text: '1d', ms: 86_400_000 },
    { name: 'a combination', text: '1m30s', ms: 90_000 },
    { name: 'a fraction', text: '1.5s', ms: 1500 },
    { name: 'surrounding spaces', text: ' 10s ', ms: 10_000 },
    { name: 'no unit is refused', text: '30', ms: undefined },
    { name: 'an unknown unit is refused', text: '3w', ms: undefined },
    { name: 'a negative is refused', text: '-5s', ms: undefined },
    { name: 'empty is refused', text: '', ms: undefined },
    { name: 'trailing junk is refused', text: '5s later', ms: undefined },
  ])('$name: $text', ({ text, ms }) => {
    expect(parseDuration(text)).toBe(ms);
  });
});

describe('durationSchema', () => {
  it.each([
    { name: 'a duration', input: '5m', ok: true },
    { name: 'zero is not an interval', input: '0s', ok: false },
    { name: 'a number is not a duration', input: 30, ok: false },
    { name: 'text is not a duration', input: 'soon', ok: false },
  ])('$name', ({ input, ok }) => {
    expect(durationSchema.safeParse(input).success).toBe(ok);
  });
});

describe('durationOrMsSchema (config timeouts)', () => {
  // A timeout is one platform timer: past 2^31-1 ms it fired after 1 ms, so `timeout: 30d` on an exec
  // backend killed every command at once. It is refused, saying why.
  it.each([
    { name: 'a duration', input: '30s', ok: true },
    { name: 'milliseconds', input: 5000, ok: true },
    { name: 'the longest timer', input: '24d', ok: true },
    { name: 'a duration longer than a timer takes', input: '30d', ok: false },
    { name: 'milliseconds longer than a timer takes', input: 2 ** 31, ok: false },
  ])('$name', ({ input, ok }) => {
    const r = durationOrMsSchema.safeParse(input);
    expect(r.success).toBe(ok);
    if (!r.success) expect(r.error.issues.map((i) => i.message)).toContain('a timeout is at most 24 days (2147483647 ms)');
  });
});

describe('formatDuration', () => {
  it.each([
    { ms: 250, text: '250ms' },
    { ms: 1500, text: '1.5s' },
    { ms: 90_000, text: '1.5m' },
    { ms: 7_200_000, text: '2h' },
  ])('$ms ms is $text', ({ ms, text }) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
