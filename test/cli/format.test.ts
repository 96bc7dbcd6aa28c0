import { describe, expect, it } from 'vitest';
import { cellLine, formatDiff, isoTime, show, table } from '../../src/cli/format.ts';

// The human plan and drift lines: one line per value, cut where long, secrets never shown.
describe('show', () => {
  it.each([
    { name: 'a short string, quoted', value: 'hello', shown: '"hello"' },
    { name: 'a multi-line string, on one line', value: 'a\nb\r\nc', shown: '"a\\nb\\r\\nc"' },
    { name: 'a long string, cut at 57 characters with an ellipsis', value: 'x'.repeat(100), shown: `"${'x'.repeat(57)}"…` },
    { name: 'exactly 60 characters, whole', value: 'y'.repeat(60), shown: `"${'y'.repeat(60)}"` },
    // Cutting UTF-16 units split the 29th emoji and printed its first half as an escape.
    { name: 'a long string of emoji, cut between characters', value: '🎉'.repeat(70), shown: `"${'🎉'.repeat(57)}"…` },
    { name: 'accents and CJK, counted as characters', value: 'é日'.repeat(20), shown: `"${'é日'.repeat(20)}"` },
    { name: 'absent', value: undefined, shown: 'absent' },
    { name: 'a number', value: 42, shown: '42' },
    { name: 'an object', value: { fromEnv: 'X' }, shown: '{"fromEnv":"X"}' },
    // An exec node's `input` of 600 KB was printed whole, one line of it, where a file's text is cut.
    { name: 'a long object, its JSON cut at 59 characters with an ellipsis', value: { data: 'z'.repeat(600_000) }, shown: `{"data":"${'z'.repeat(50)}…` },
    { name: 'an object of exactly 60 characters, whole', value: { d: 'w'.repeat(52) }, shown: `{"d":"${'w'.repeat(52)}"}` },
    { name: 'a long list of emoji, cut between characters', value: ['🎉'.repeat(70)], shown: `["${'🎉'.repeat(57)}…` },
  ])('$name', ({ value, shown }) => {
    expect(show(value)).toBe(shown);
    expect(show(value)).not.toMatch(/\\ud[89ab]/i);
  });
});

describe('formatDiff', () => {
  it('shows a masked field as <secret> on both sides, marked (secret)', () => {
    expect(formatDiff({ path: 'password', desired: '<secret>', actual: '<secret>', masked: true })).toEqual(['      password: "<secret>" → "<secret>" (secret)']);
  });

  it('marks a rotated secret (a change to apply, not drift), still masked', () => {
    expect(formatDiff({ path: 'password', desired: '<secret>', actual: '<secret>', masked: true, cause: 'secret-rotated' })).toEqual(['      password: "<secret>" → "<secret>" (secret, rotated)']);
  });

  it('indents a multi-line detail under its field, at most 40 lines', () => {
    const detail = Array.from({ length: 50 }, (_, i) => `+line ${i}`).join('\n');
    const lines = formatDiff({ path: 'content', desired: 'b', actual: 'a', detail });
    expect(lines[0]).toBe('      content: "a" → "b"');
    expect(lines.slice(1)).toHaveLength(40);
    expect(lines[1]).toBe('        +line 0');
  });
});

describe('table', () => {
  it('pads every column but the last, and trims the line', () => {
    expect(table([['NODE', 'STATUS', 'REASON'], ['a-long-node', 'ready', ''], ['b', 'held', 'held by policy: ⊘ naming']])).toEqual([
      'NODE         STATUS  REASON',
      'a-long-node  ready',
      'b            held    held by policy: ⊘ naming',
    ]);
  });
});

describe('cellLine', () => {
  it.each([
    { name: 'one line, as it is', text: 'held by policy: naming:name (high, org)', shown: 'held by policy: naming:name (high, org)' },
    { name: 'several lines: the last non-empty one, with how many', text: 'noise 1\nnoise 2\nREAL REASON\n\n', shown: 'REAL REASON (last of 3 lines)' },
    { name: 'one line and blank ones: that line', text: '\nonly this  \n', shown: 'only this' },
    { name: 'empty', text: '', shown: '' },
  ])('$name', ({ text, shown }) => {
    expect(cellLine(text)).toBe(shown);
  });
});

describe('isoTime', () => {
  // A circuit whose cool-down was 9e15 ms had its probe past the last date: `status` and `retry` threw RangeError (exit 70).
  it.each([
    { name: 'a time, in ISO 8601', ms: 0, shown: '1970-01-01T00:00:00.000Z' },
    { name: 'none', ms: null, shown: '-' },
    { name: 'a time past the last date, as its number', ms: Date.now() + 9e15, shown: expect.stringMatching(/^\d+ ms after 1970$/) },
  ])('$name', ({ ms, shown }) => {
    expect(isoTime(ms)).toEqual(shown);
  });
});
