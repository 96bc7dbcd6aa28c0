import { describe, expect, it } from 'vitest';
import { hasReferences, interpolateGoal, resolveReferences } from '../../src/runtime/index.ts';
import type { GoalField, Outputs } from '../../src/runtime/index.ts';

/**
 * `$${` is a literal `${`, exactly once, and a goal label goes in verbatim:
 * what a backend receives is the same whether or not the string (or another
 * string of the spec) holds a node reference.
 */
const goal = { name: 'esc', environment: 'dev', labels: { tpl: 'a${b}c', esc: 'x$${y}', ref: '${nodes.a.outputs.sha256}' } };
const outputs: Record<string, Outputs> = { a: { sha256: 'abc123' } };

/** What a backend gets for `input`: interpolated at compile time, then resolved as the dispatcher does. */
function delivered(input: Record<string, unknown>, unknown?: ReadonlySet<GoalField>): { value: unknown; problems: string[] } {
  const problems: string[] = [];
  const compiled = interpolateGoal(input, goal, (_path, message) => problems.push(message), { unknown });
  const value = hasReferences(compiled.value) ? resolveReferences(compiled.value, (id) => outputs[id]).value : compiled.value;
  return { value, problems };
}

describe('interpolation: $${ and goal labels, compiled then resolved', () => {
  it.each([
    { name: 'an escape alone', input: 'esc=$${HOME}', output: 'esc=${HOME}' },
    { name: 'an escape and a goal label holding ${', input: 'label=${goal.labels.tpl} esc=$${HOME}', output: 'label=a${b}c esc=${HOME}' },
    { name: 'an escape and a node reference', input: 'esc=$${HOME} ${nodes.a.outputs.sha256}', output: 'esc=${HOME} abc123' },
    { name: 'escape, label and reference', input: 'label=${goal.labels.tpl} esc=$${HOME} ${nodes.a.outputs.sha256}', output: 'label=a${b}c esc=${HOME} abc123' },
    { name: 'a label holding $${ is inserted as written', input: 'l=${goal.labels.esc}', output: 'l=x$${y}' },
    { name: 'a label holding $${, beside a reference', input: 'l=${goal.labels.esc} ${nodes.a.outputs.sha256}', output: 'l=x$${y} abc123' },
    { name: 'a label that looks like a reference stays text', input: '${goal.labels.ref}', output: '${nodes.a.outputs.sha256}' },
    { name: 'an escaped reference stays text', input: '$${nodes.a.outputs.sha256}', output: '${nodes.a.outputs.sha256}' },
    { name: '$$${ is a "$" then an escape', input: '$$${x}', output: '$${x}' },
    { name: 'a lone $ and braces are text', input: 'cost $5 {x} $ {y}', output: 'cost $5 {x} $ {y}' },
  ])('$name', ({ input, output }) => {
    const r = delivered({ s: input });
    expect(r.problems).toEqual([]);
    expect(r.value).toEqual({ s: output });
  });

  it('resolves an escape in one string when another string of the spec holds the reference, once', () => {
    const r = delivered({ a: 'esc=$${HOME} ${goal.labels.tpl}', b: '${nodes.a.outputs.sha256}' });
    expect(r.value).toEqual({ a: 'esc=${HOME} a${b}c', b: 'abc123' });
  });

  it('inserts an output value verbatim, never reading its own ${ or $${', () => {
    const compiled = interpolateGoal({ s: '${nodes.a.outputs.v}' }, goal, () => undefined).value;
    expect(resolveReferences(compiled, () => ({ v: 'p$${q} ${r}' })).value).toEqual({ s: 'p$${q} ${r}' });
  });

  it('keeps the compiled template as before: $${ stays escaped until resolution', () => {
    // The stored spec (and so its digest) is the same as before the fix: only what reaches the backend changed.
    const compiled = interpolateGoal({ s: 'label=${goal.labels.tpl} esc=$${HOME}' }, goal, () => undefined).value;
    expect(compiled).toEqual({ s: 'label=a$${b}c esc=$${HOME}' });
  });
});

describe('interpolation: goal fields that are unknown (invalid in the goal document)', () => {
  it('leaves their expressions in place, unreported, and says which strings read them', () => {
    const problems: string[] = [];
    const r = interpolateGoal(
      { a: 'x-${goal.name}', b: ['${goal.labels.nope}'], c: '${goal.environment}', d: 'plain' },
      goal,
      (_p, m) => problems.push(m),
      { unknown: new Set<GoalField>(['name', 'labels']) },
    );
    expect(problems).toEqual([]);
    expect(r.value).toEqual({ a: 'x-${goal.name}', b: ['${goal.labels.nope}'], c: 'dev', d: 'plain' });
    expect(r.pending).toEqual([
      { path: ['a'], type: 'string' },
      { path: ['b', 0], type: 'string' },
    ]);
  });
});
