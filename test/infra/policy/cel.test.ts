import { describe, expect, it } from 'vitest';
import { compileCel, defaultCelLimits, toCelValue } from '../../../src/infra/policy/index.ts';
import type { CelActivation } from '../../../src/infra/policy/index.ts';
import type { FieldKind } from '../../../src/infra/policy/cel-types.ts';

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
    // Types the checker knows: otherwise the same error on every node.
    { name: 'a call yielding an int (not a bool)', source: 'size(spec.a)', says: 'yields an int, not a bool' },
    { name: 'a constant regex that does not compile', source: "labels.team.matches('(')", says: 'the pattern of matches() does not compile: error parsing regexp: missing closing )' },
    { name: 'a string plus an int', source: "labels.team + 1 == 'x'", says: '+ cannot be applied to a string and an int' },
    { name: 'a misspelt field of goal', source: "goal.enviroment == 'prod'", says: 'goal has no field "enviroment" (did you mean "environment"?)' },
    { name: 'a string where && takes a bool', source: 'id && true', says: '&& takes bools; this is a string' },
    { name: 'a string method on an int', source: "size(id).startsWith('a')", says: 'startsWith(a string) on an int is not defined' },
  ])('refuses $name', ({ source, says }) => {
    const r = compileCel(source);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]?.message).toContain(says);
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

describe('compileCel: types are checked at the rule', () => {
  const fields = new Map<string, readonly FieldKind[] | undefined>([
    ['path', ['string']],
    ['limit', ['int', 'double']],
    ['owner', ['string', 'null']],
    ['tags', ['list']],
    ['any', undefined],
  ]);

  it('lists every type error, each where it is written', () => {
    const r = compileCel("spec.path + 1 == 'x' &&\n  goal.enviroment == 'prod' && spec.path.matches('(')", defaultCelLimits, fields);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual([
      { message: '+ cannot be applied to a string and an int', line: 1, col: 11 },
      { message: 'goal has no field "enviroment" (did you mean "environment"?); it has name, environment, labels', line: 2, col: 7 },
      { message: expect.stringContaining('the pattern of matches() does not compile: error parsing regexp: missing closing )'), line: 2, col: 50 },
    ]);
  });

  it.each([
    { source: "spec.limit + 'x' == 1", says: '+ cannot be applied to an int or a double and a string' },
    { source: 'spec.path', says: undefined },
    { source: "spec.tags.exists(t, t + 1 == 2) && spec.path.size() > 'a'", says: '> cannot be applied to an int and a string' },
  ])('$source: a field has the types of its schema', ({ source, says }) => {
    const r = compileCel(source, defaultCelLimits, fields);
    if (says === undefined) expect(r.ok).toBe(true);
    else expect(!r.ok && r.errors.map((e) => e.message)).toEqual([says]);
  });

  it.each([
    'spec.limit > 10 && spec.limit < 10.5',
    "spec.owner == null || spec.owner.startsWith('svc-')",
    "spec.any + 1 == 2 || spec.any.startsWith('a') || spec.any",
    "spec.tags.all(t, t.startsWith('a')) && spec.tags.map(t, size(t)).exists(n, n > 2)",
    "goal.labels.team == labels.team && goal.name.matches('^[a-z]+$') && 'x' in goal.labels",
    "type(spec.limit) == int ? spec.limit % 2 == 0 : spec.limit > 0.5",
    "spec.nope == 1 && spec.tags[0] == 'a' || has(goal.nope)",
  ])('accepts %s', (source) => {
    const r = compileCel(source, defaultCelLimits, fields);
    expect(r.ok ? [] : r.errors).toEqual([]);
  });
});

describe('evaluation never throws', () => {
  it.each([
    { name: 'a missing field', source: 'spec.missing == 1', says: 'missing' },
    { name: 'division by zero', source: '1 / (size(spec.a) - 2) == 0', says: 'divide by zero' },
    { name: 'a non-bool result', source: 'spec.a[0]', says: 'not a bool' },
    { name: 'a bad regex at run time', source: "labels.team.matches(labels.team + '(')", says: 'error parsing regexp: missing closing )' },
    // It said "Cannot convert data to a BigInt", JavaScript's words.
    { name: 'a string that is no int', source: 'int(labels.team) == 1', says: 'cannot convert string "data" to int' },
    { name: 'a string that is no uint', source: 'uint(labels.team) == 1u', says: 'cannot convert string "data" to uint' },
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
