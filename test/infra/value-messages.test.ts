import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../src/runtime/index.ts';
import { compileText } from '../support/compile.ts';
import { compileTexts } from './policy/helpers.ts';

/**
 * What a wrong value is told, in words a user acts on: the forms a field
 * takes, never zod's "does not match any accepted form" or a number that is
 * not one (found by the goal-format audit of 2026-11-24).
 */

const backend = (type: string, config: string): string => `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: b }
spec: { type: ${type}, config: ${config} }
`;

const messages = (text: string): string[] => compileText(text).lines.map((l) => l.replace(/^[^:]+:\d+:\d+: /, ''));

describe('a wrong value is told what the field takes', () => {
  it('a duration field that also takes a word or a number of milliseconds lists them', () => {
    expect(messages(backend('local', '{ root: files, rereadEvery: banana }'))).toEqual(['error invalid-value: spec.config.rereadEvery: expected "always" or a duration such as "30m" or "1h"']);
    expect(messages(backend('exec', '{ timeout: banana }'))).toEqual([
      'error invalid-value: spec.config.timeout: expected a duration such as "500ms", "30s" or "5m", or a whole number of milliseconds',
    ]);
    expect(messages(backend('exec', '{ timeout: 45s }'))).toEqual([]);
  });

  it('a value of a type none of a field\'s forms takes is told the forms', () => {
    const goal = (inventory: string): string => `${backend('memory', '{}')}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  nodes:
    - { id: a, type: ansible.playbook, backend: b, spec: { playbook: p.yml, inventory: ${inventory} } }
`;
    expect(messages(goal('5'))).toEqual(['error invalid-value: spec.inventory: expected a string or a list, got the number 5']);
    expect(messages(goal('{ a: 1 }'))).toEqual(['error invalid-value: spec.inventory: expected a string or a list, got a map']);
    // A list of the wrong items is told what is wrong with them.
    expect(messages(goal('[5]'))).toEqual(['error invalid-type: spec.inventory[0]: expected a string, got the number 5 (quote it to make it a string)']);
  });

  it('an infinite number is said to be no finite number, and an empty string to be empty', () => {
    const goal = `${backend('postgres', '{ host: db }')}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  nodes:
    - { id: a, type: postgres.role, backend: b, spec: { name: a, connectionLimit: .inf, password: { fromEnv: "" } } }
`;
    expect(messages(goal)).toEqual([
      'error invalid-type: spec.connectionLimit: expected a number, got Infinity (not a finite number)',
      'error invalid-value: spec.password.fromEnv: an empty string is not valid: an environment variable name',
    ]);
  });
});

/**
 * One error per wrong value, in the project's words: an integer field with a bound of its own said only
 * that bound (zod's `.int()` added "too big: expected int to be <=9007199254740991" at the same place), and
 * a date that is not one was said not to be a date twice.
 */
describe('one error per wrong value', () => {
  const withRole = (config: string, role: string): string => `${backend('postgres', config)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  nodes:
    - { id: a, type: postgres.role, backend: b, spec: ${role} }
`;
  const lines = (text: string): string[] => compileText(text).lines;

  it.each([
    {
      name: 'a port past the largest number',
      text: withRole('{ host: db, port: 99999999999999999999999 }', '{ name: a }'),
      want: ['goals/test.yaml:4:51: error invalid-value: spec.config.port must be at most 65535, not the number 1e+23'],
    },
    {
      name: 'a connection limit past the largest number',
      text: withRole('{ host: db }', '{ name: a, connectionLimit: 99999999999999999999999 }'),
      want: ['goals/test.yaml:11:83: error invalid-value: spec.connectionLimit: a connection limit is at most 2147483647 (-1 for no limit)'],
    },
    {
      name: 'a connection limit below -1',
      text: withRole('{ host: db }', '{ name: a, connectionLimit: -5 }'),
      want: ['goals/test.yaml:11:83: error invalid-value: spec.connectionLimit must be at least -1, not the number -5'],
    },
    {
      name: 'a validUntil that is no date',
      text: withRole('{ host: db }', '{ name: a, validUntil: notadate }'),
      want: ['goals/test.yaml:11:78: error invalid-value: spec.validUntil: the string "notadate" is not valid: validUntil is "infinity" or an ISO 8601 date or date-time, e.g. "2030-01-01" or "2030-01-01T00:00:00Z"'],
    },
  ])('$name', ({ text, want }) => {
    expect(lines(text)).toEqual(want);
  });

  it('a policy default past a bound is said as a goal value is', () => {
    const policy = 'apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: p }\nspec:\n  defaults:\n    - { types: [postgres.role], set: { connectionLimit: 99999999999999999999999, validUntil: notadate } }\n';
    expect(compileTexts({ 'goals/test.yaml': policy }).result.diagnostics.map(formatDiagnostic)).toEqual([
      'goals/test.yaml:6:57: error invalid-value: connectionLimit of postgres.role: a connection limit is at most 2147483647 (-1 for no limit)',
      'goals/test.yaml:6:94: error invalid-value: validUntil of postgres.role: the string "notadate" is not valid: validUntil is "infinity" or an ISO 8601 date or date-time, e.g. "2030-01-01" or "2030-01-01T00:00:00Z"',
    ]);
  });
});
