import { describe, expect, it } from 'vitest';
import { compileCel, defaultCelLimits, toCelValue } from '../../../src/infra/policy/index.ts';
import type { CelActivation } from '../../../src/infra/policy/index.ts';

const activation = (spec: Record<string, unknown>): CelActivation => ({
  id: 'n',
  type: 'postgres.role',
  spec: toCelValue(spec),
  labels: { team: 'data' },
  goal: toCelValue({ name: 'g', environment: 'prod', labels: {} }),
  deletionPolicy: 'Orphan',
});

describe('compileCel: static bounds keep evaluation cheap', () => {
  it.each([
    { name: 'too long', source: `${'true && '.repeat(300)}true`, says: 'the limit is 2048' },
    { name: 'too many terms', source: `[${Array.from({ length: 450 }, () => '0').join(',')}] == []`, says: 'too large' },
    { name: 'comprehensions nested three deep: O(n^3)', source: 'spec.a.all(x, spec.a.all(y, spec.a.all(z, x == y && y == z)))', says: 'nested comprehensions' },
    { name: 'protobuf message construction', source: 'google.protobuf.Duration{seconds: 1} != null', says: 'message construction' },
    { name: 'nesting deeper than the limit', source: `${'['.repeat(40)}${']'.repeat(40)} == []`, says: 'nested more than' },
    // Non-booleans the parser can see: otherwise a rule error on every node, blocking prod where the rule is high.
    { name: 'arithmetic (not a bool)', source: '1 + 2', says: 'yields an arithmetic result (+), not a bool' },
    { name: 'a string literal (not a bool)', source: "'true'", says: 'yields a string, not a bool' },
    { name: 'a list literal (not a bool)', source: '[true]', says: 'yields a list, not a bool' },
    { name: 'a map literal (not a bool)', source: "{'a': true}", says: 'yields a map, not a bool' },
  ])('refuses $name', ({ source, says }) => {
    const r = compileCel(source);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(says);
  });

  it.each([
    { name: 'two nested comprehensions are allowed', source: 'spec.a.all(x, spec.a.exists(y, x == y))', want: true },
    { name: 'comprehension variables are known names', source: 'spec.a.map(x, x * 2).exists(y, y == 4)', want: true },
    { name: 'string extensions are available', source: "labels.team.upperAscii() == 'DATA'", want: true },
    { name: 'type names are values', source: 'type(spec.a) == list', want: true },
  ])('$name', ({ source, want }) => {
    const r = compileCel(source);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.program.run(activation({ a: [1, 2] }))).toEqual({ status: 'value', value: want });
  });
});

describe('evaluation never throws', () => {
  it.each([
    { name: 'a missing field', source: 'spec.missing == 1', says: 'missing' },
    { name: 'division by zero', source: '1 / (size(spec.a) - 2) == 0', says: 'divide by zero' },
    { name: 'a non-bool result', source: 'size(spec.a)', says: 'not a bool' },
    { name: 'a bad regex at run time', source: "labels.team.matches('(')", says: 'error parsing regexp: missing closing )' },
  ])('$name is an error outcome', ({ source, says }) => {
    const r = compileCel(source);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const out = r.program.run(activation({ a: [1, 2] }));
    expect(out.status).toBe('error');
    if (out.status === 'error') expect(out.message).toContain(says);
  });
});

describe('evaluation cost is bounded by the data too', () => {
  // Two nested comprehensions are allowed, but over a list the goal supplies (a 20,000-character
  // content split into characters) they are 4e8 steps: minutes per node. A budget of loop steps stops
  // them (the cost budget, cel-budget.test.ts, would too: set aside here).
  it('two nested comprehensions over a long list stop at the step budget: an error, quickly', () => {
    const r = compileCel("spec.content.split('').all(x, spec.content.split('').all(y, x == y))", { ...defaultCelLimits, maxCost: Number.POSITIVE_INFINITY });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const started = performance.now();
    const out = r.program.run(activation({ content: 'a'.repeat(20_000) }));
    expect(performance.now() - started).toBeLessThan(3000);
    expect(out).toEqual({ status: 'error', message: expect.stringContaining('more than 100000 loop steps') });
    // The budget is per evaluation: the next one starts afresh.
    expect(r.program.run(activation({ content: 'ab' }))).toEqual({ status: 'value', value: false });
  });

  it('a comprehension within the budget is evaluated as usual', () => {
    const r = compileCel("spec.a.map(x, x * 2).filter(y, y > 2).size() == 1 && spec.a.exists(x, x == 2)");
    expect(r.ok && r.program.run(activation({ a: [1, 2] }))).toEqual({ status: 'value', value: true });
  });
});

describe('focus: the node path a finding points at', () => {
  it.each([
    { source: "spec.encryption != 'none'", focus: ['spec', 'encryption'] },
    { source: 'has(spec.version) && spec.version != ""', focus: ['spec', 'version'] },
    { source: "deletionPolicy != 'Delete'", focus: ['deletionPolicy'] },
    { source: 'spec.a == 1 && spec.b == 2', focus: undefined },
    { source: 'spec.a.all(spec, spec.x == 1)', focus: ['spec', 'a'] },
  ])('$source', ({ source, focus }) => {
    const r = compileCel(source);
    expect(r.ok && r.program.focus).toEqual(focus);
  });
});

describe('toCelValue', () => {
  it.each([
    { name: 'whole numbers become ints', input: 20, want: 20n },
    { name: 'fractions stay doubles', input: 1.5, want: 1.5 },
    { name: 'strings, booleans and null pass through', input: 'x', want: 'x' },
  ])('$name', ({ input, want }) => {
    expect(toCelValue(input)).toEqual(want);
  });

  it.each([
    { name: 'undefined fields are dropped (has() is false)', spec: { a: undefined, b: 1 }, source: '!has(spec.a) && spec.b == 1' },
    { name: 'lists convert element-wise', spec: { a: [1, 'x', true, null] }, source: "spec.a == [1, 'x', true, null]" },
    { name: 'nested maps convert', spec: { a: { b: { c: 2 } } }, source: 'spec.a.b.c == 2' },
  ])('$name', ({ spec, source }) => {
    const r = compileCel(source);
    expect(r.ok && r.program.run(activation(spec))).toEqual({ status: 'value', value: true });
  });
});
