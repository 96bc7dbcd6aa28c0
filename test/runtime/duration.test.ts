import { describe, expect, it } from 'vitest';
import { durationSchema, formatDuration, parseDuration } from '../../src/runtime/index.ts';

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
