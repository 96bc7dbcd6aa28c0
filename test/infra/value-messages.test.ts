import { describe, expect, it } from 'vitest';
import { compileText } from '../support/compile.ts';

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
