import { describe, expect, it } from 'vitest';
import { DiagnosticBag, didYouMean, editDistance, formatDiagnostic, sortDiagnostics, suggestion } from '../../src/runtime/index.ts';
import type { Diagnostic } from '../../src/runtime/index.ts';

describe('didYouMean', () => {
  const fields = ['path', 'content', 'mode', 'owner', 'group'];
  it.each([
    { name: 'a transposition', word: 'contnet', expected: 'content' },
    { name: 'a missing letter', word: 'ownr', expected: 'owner' },
    { name: 'case differences are free', word: 'Mode', expected: 'mode' },
    { name: 'nothing close', word: 'permissions', expected: undefined },
    { name: 'short words need a close match', word: 'xy', expected: undefined },
  ])('$name: $word', ({ word, expected }) => {
    expect(didYouMean(word, fields)).toBe(expected);
  });

  it.each([
    { name: 'types', word: 'postgres.databse', candidates: ['postgres.database', 'postgres.role'], expected: 'postgres.database' },
    { name: 'node ids', word: 'app-config-dri', candidates: ['app-config', 'app-config-dir'], expected: 'app-config-dir' },
    { name: 'the closest wins', word: 'locl', candidates: ['memory', 'local', 'exec'], expected: 'local' },
    // Two edits in a two-letter word are a third word, not a typo of it.
    { name: 'an unrelated short id', word: 'xy', candidates: ['a'], expected: undefined },
    { name: 'a short id one edit away', word: 'ab', candidates: ['a', 'xyz'], expected: 'a' },
    { name: 'a long word two edits away', word: 'retentionDay', candidates: ['retentionDays'], expected: 'retentionDays' },
    { name: 'a word three edits off a nine-letter one', word: 'prttin', candidates: ['partition'], expected: 'partition' },
    { name: 'a four-letter word two edits off', word: 'mxyz', candidates: ['mode'], expected: undefined },
  ])('picks among $name', ({ word, candidates, expected }) => {
    expect(didYouMean(word, candidates)).toBe(expected);
  });

  it('formats a suggestion, or nothing', () => {
    expect(suggestion('contnet', ['content'])).toBe(' (did you mean "content"?)');
    expect(suggestion('zzz', ['content'])).toBe('');
  });

  it.each([
    { a: '', b: 'abc', d: 3 },
    { a: 'kitten', b: 'sitting', d: 3 },
    { a: 'same', b: 'same', d: 0 },
    { a: 'moed', b: 'mode', d: 1 },
    { a: 'contnet', b: 'content', d: 1 },
  ])('editDistance($a, $b) = $d', ({ a, b, d }) => {
    expect(editDistance(a, b)).toBe(d);
  });
});

describe('formatDiagnostic', () => {
  it.each([
    {
      name: 'the documented form',
      d: { file: 'goals/app.yaml', line: 14, col: 9, severity: 'error', code: 'unknown-field', message: 'spec.contnet is not a field of local.file (did you mean "content"?)' },
      text: 'goals/app.yaml:14:9: error unknown-field: spec.contnet is not a field of local.file (did you mean "content"?)',
    },
    { name: 'a warning', d: { file: 'a.yaml', line: 1, col: 1, severity: 'warning', code: 'x', message: 'y' }, text: 'a.yaml:1:1: warning x: y' },
    // A key written "con\ntent" in a goal file printed its diagnostic over two lines.
    {
      name: 'a line break quoted from the goal file stays on the one line',
      d: { file: 'goals/new\nline.yaml', line: 6, col: 64, severity: 'error', code: 'unknown-field', message: 'spec.con\ntent is not a field of local.file (did you mean "content"?)' },
      text: 'goals/new\\nline.yaml:6:64: error unknown-field: spec.con\\ntent is not a field of local.file (did you mean "content"?)',
    },
    { name: 'a carriage return too', d: { file: 'a.yaml', line: 1, col: 1, severity: 'error', code: 'x', message: 'a\r\nb' }, text: 'a.yaml:1:1: error x: a\\r\\nb' },
  ] satisfies { name: string; d: Diagnostic; text: string }[])('$name', ({ d, text }) => {
    expect(formatDiagnostic(d)).toBe(text);
  });
});

describe('sortDiagnostics and DiagnosticBag', () => {
  it('sorts by file, then line, then column, then code, keeping input order otherwise', () => {
    const bag = new DiagnosticBag();
    bag.error({ file: 'b.yaml', line: 1, col: 1 }, 'z', 'first');
    bag.error({ file: 'a.yaml', line: 10, col: 2 }, 'y', 'second');
    bag.warning({ file: 'a.yaml', line: 2, col: 9 }, 'x', 'third');
    bag.error({ file: 'a.yaml', line: 10, col: 1 }, 'w', 'fourth');
    bag.error({ file: 'a.yaml', line: 10, col: 1 }, 'w', 'fifth');
    expect(sortDiagnostics(bag.items).map((d) => d.message)).toEqual(['third', 'fourth', 'fifth', 'second', 'first']);
    expect(bag.hasErrors).toBe(true);
  });

  it('has no errors with warnings only', () => {
    const bag = new DiagnosticBag();
    bag.warning({ file: 'a.yaml', line: 1, col: 1 }, 'x', 'y');
    expect(bag.hasErrors).toBe(false);
  });
});
