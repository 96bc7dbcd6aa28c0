import { describe, expect, it } from 'vitest';
import { lineOps } from '../../src/infra/index.ts';

const show = (a: string[], b: string[]): string[] => lineOps(a, b).map((o) => `${o.kind}${o.line}`);

describe('lineOps', () => {
  it.each([
    { a: [], b: [], ops: [] },
    { a: ['a', 'b', 'c'], b: ['a', 'b', 'c'], ops: [' a', ' b', ' c'] },
    { a: ['a', 'b', 'c'], b: ['a', 'x', 'c'], ops: [' a', '-b', '+x', ' c'] },
    { a: ['a'], b: [], ops: ['-a'] },
    { a: [], b: ['a', 'b'], ops: ['+a', '+b'] },
    { a: ['x', 'a', 'b'], b: ['a', 'b', 'y'], ops: ['-x', ' a', ' b', '+y'] },
  ])('$a -> $b', ({ a, b, ops }) => {
    expect(show(a, b)).toEqual(ops);
  });

  it('applying the script to the first list gives the second', () => {
    const a = 'the quick brown fox jumps over the lazy dog'.split(' ');
    const b = 'a quick red fox jumped over the dog again'.split(' ');
    const ops = lineOps(a, b);
    expect(ops.filter((o) => o.kind !== '+').map((o) => o.line)).toEqual(a);
    expect(ops.filter((o) => o.kind !== '-').map((o) => o.line)).toEqual(b);
    expect(ops.filter((o) => o.kind === ' ').map((o) => o.line)).toEqual(['quick', 'fox', 'over', 'the', 'dog']);
  });
});
