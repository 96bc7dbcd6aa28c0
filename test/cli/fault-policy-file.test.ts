import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decide, formatDiagnostic } from '../../src/runtime/index.ts';
import type { FaultClass } from '../../src/runtime/index.ts';
import { loadFaultPolicyFile } from '../../src/cli/fault-policy-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'ds-fault-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function load(text: string) {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  return loadFaultPolicyFile(file, 'faults.yaml');
}

describe('fault policy file', () => {
  it('overrides only what it names; the rest keeps the defaults', async () => {
    const r = await load('retry:\n  transient: { baseMs: 500, maxMs: 60000 }\n  permanent: { retryBudget: 5 }\ncircuitBreaker: { failureThreshold: 10 }\n');
    if ('diagnostics' in r) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
    expect(r.policy.transient).toEqual({ baseMs: 500, maxMs: 60000, retryBudget: Infinity, holdAfterBudget: false });
    expect(r.policy.permanent).toMatchObject({ retryBudget: 5, holdAfterBudget: true, baseMs: 1000 });
    expect(r.policy.auth).toMatchObject({ retryBudget: 3, holdAfterBudget: true });
    expect(r.circuitBreaker).toMatchObject({ failureThreshold: 10, coolDownMs: 30000 });
  });

  // A spent budget does nothing but hold: `transient: { retryBudget: 2 }` was accepted and the node retried for ever.
  it.each([
    { name: 'a budget written holds after it, whatever the class', text: 'retry: { transient: { retryBudget: 2 } }\n', cls: 'transient', attempts: 2, action: 'hold' },
    { name: 'a budget written for a class that holds anyway', text: 'retry: { permanent: { retryBudget: 5 } }\n', cls: 'permanent', attempts: 5, action: 'hold' },
    { name: 'not before it is spent', text: 'retry: { throttled: { retryBudget: 2 } }\n', cls: 'throttled', attempts: 1, action: 'retry' },
    { name: 'holdAfterBudget: false never holds a class held by default', text: 'retry: { auth: { holdAfterBudget: false } }\n', cls: 'auth', attempts: 50, action: 'retry' },
    { name: 'a class not written keeps retrying', text: 'retry: { transient: { retryBudget: 2 } }\n', cls: 'unknown', attempts: 50, action: 'retry' },
  ] satisfies { name: string; text: string; cls: FaultClass; attempts: number; action: string }[])('$name', async ({ text, cls, attempts, action }) => {
    const r = await load(text);
    if ('diagnostics' in r) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
    expect(decide({ class: cls, message: 'failed' }, attempts, () => 0.5, r.policy).action).toBe(action);
  });

  it.each([
    { name: 'a misspelt class', text: 'retry:\n  permanant: { retryBudget: 2 }\n', lines: ['faults.yaml:2:3: error unknown-field: retry.permanant is not a field of a fault policy (did you mean "permanent"?)'] },
    { name: 'a negative delay', text: 'retry:\n  transient: { baseMs: -1 }\n', lines: ['faults.yaml:2:24: error invalid-value: retry.transient.baseMs must be more than 0, not the number -1'] },
    { name: 'a delay as a string', text: 'circuitBreaker: { coolDownMs: "30s" }\n', lines: ['faults.yaml:1:31: error invalid-type: circuitBreaker.coolDownMs: expected a number, got the string "30s"'] },
    { name: 'a cap below the base after merging', text: 'retry:\n  transient: { maxMs: 10 }\n', code: 'invalid-value' },
    { name: 'a duplicate key', text: 'retry: {}\nretry: {}\n', code: 'duplicate-key' },
    // The cross-field rule pointed at 1:1; it points at the field written, saying where the other value comes from.
    { name: 'a cap below a default base', text: 'retry:\n  transient: { maxMs: 10 }\n', lines: ['faults.yaml:2:23: error invalid-value: retry.transient.maxMs: maxMs (10) must be at least baseMs (1000, the default)'] },
    { name: 'a base above a default cap', text: 'retry:\n  auth:\n    baseMs: 600000\n', lines: ['faults.yaml:3:13: error invalid-value: retry.auth.baseMs: maxMs (300000, the default) must be at least baseMs (600000)'] },
    // Once, not twice (zod's int() and max() both said "too big").
    { name: 'a delay past the largest whole number', text: 'circuitBreaker: { coolDownMs: 1e99 }\n', lines: ['faults.yaml:1:31: error invalid-value: circuitBreaker.coolDownMs: a delay is at most 24 days (2147483647 ms)'] },
    // A cool-down of 9e15 ms put an open circuit's probe past the last date: `status` and `retry` threw. Every delay is bounded as a timeout is.
    { name: 'a cool-down past 24 days', text: 'circuitBreaker: { coolDownMs: 9000000000000000 }\n', lines: ['faults.yaml:1:31: error invalid-value: circuitBreaker.coolDownMs: a delay is at most 24 days (2147483647 ms)'] },
    { name: 'a probe wait past 24 days', text: 'circuitBreaker:\n  probeWaitMs: 2147483648\n', lines: ['faults.yaml:2:16: error invalid-value: circuitBreaker.probeWaitMs: a delay is at most 24 days (2147483647 ms)'] },
    { name: 'a backoff cap past 24 days', text: 'retry:\n  transient: { maxMs: 9007199254740991 }\n', lines: ['faults.yaml:2:23: error invalid-value: retry.transient.maxMs: a delay is at most 24 days (2147483647 ms)'] },
    { name: 'a backoff base past 24 days', text: 'retry:\n  auth: { baseMs: 3000000000, maxMs: 3000000000 }\n', lines: ['faults.yaml:2:19: error invalid-value: retry.auth.baseMs: a delay is at most 24 days (2147483647 ms)', 'faults.yaml:2:38: error invalid-value: retry.auth.maxMs: a delay is at most 24 days (2147483647 ms)'] },
    // A union named only the last form tried, and spelt .inf as JSON does: "retryBudget must be null, not the number 1.5".
    { name: 'a fractional budget', text: 'retry: { transient: { retryBudget: 1.5 } }\n', lines: ['faults.yaml:1:36: error invalid-value: retry.transient.retryBudget: expected an integer, .inf or null, got the number 1.5'] },
    { name: 'a budget as a string', text: 'retry: { transient: { retryBudget: "3" } }\n', lines: ['faults.yaml:1:36: error invalid-value: retry.transient.retryBudget: expected a number, .inf or null, got the string "3"'] },
    { name: 'a budget as a boolean', text: 'retry: { auth: { retryBudget: true } }\n', lines: ['faults.yaml:1:31: error invalid-value: retry.auth.retryBudget: expected a number, .inf or null, got boolean true'] },
    // Settings that would change nothing: a budget never acted on, a hold after a budget never spent.
    {
      name: 'a budget with holdAfterBudget: false',
      text: 'retry:\n  transient: { retryBudget: 2, holdAfterBudget: false }\n',
      lines: ['faults.yaml:2:29: error invalid-value: retry.transient.retryBudget: 2 has no effect with holdAfterBudget: false (a spent budget only holds the node); drop holdAfterBudget: false to hold the node after 2 failed attempts, or write retryBudget: null to retry for ever'],
    },
    { name: 'a hold after the default unlimited budget', text: 'retry:\n  transient: { holdAfterBudget: true }\n', lines: ['faults.yaml:2:33: error invalid-value: retry.transient.holdAfterBudget: true has no effect: the retryBudget is unlimited (the default); give a retryBudget, the failed attempts after which the node is held'] },
    { name: 'a hold after an unlimited budget', text: 'retry:\n  auth: { retryBudget: null, holdAfterBudget: true }\n', lines: ['faults.yaml:2:47: error invalid-value: retry.auth.holdAfterBudget: true has no effect: the retryBudget is unlimited; give a retryBudget, the failed attempts after which the node is held'] },
    // It is no goal file: the message names what the user passed.
    { name: 'an empty file', text: '', lines: ['faults.yaml:1:1: error empty-file: fault policy file is empty'] },
    { name: 'a file of comments', text: '# nothing yet\n', lines: ['faults.yaml:1:1: error empty-file: fault policy file holds no YAML document'] },
    // The whole file of the wrong type: the message named an empty field (`: expected a map, got a list`).
    { name: 'a list', text: '- retry\n', lines: ['faults.yaml:1:1: error invalid-type: a fault policy must be a map, got a list'] },
    { name: 'a number', text: '5\n', lines: ['faults.yaml:1:1: error invalid-type: a fault policy must be a map, got the number 5'] },
    { name: 'a custom tag', text: 'retry: !foo {}\n', lines: ['faults.yaml:1:8: error custom-tag: custom tag !foo is not allowed in a fault policy file'] },
  ])('$name is refused with its position', async ({ text, lines, code }) => {
    const r = await load(text);
    if (!('diagnostics' in r)) throw new Error('expected diagnostics');
    if (lines !== undefined) expect(r.diagnostics.map(formatDiagnostic)).toEqual(lines);
    if (code !== undefined) expect(r.diagnostics.map((d) => d.code)).toContain(code);
  });
});

describe.skipIf(process.platform === 'win32')('fault policy file: no regular file', () => {
  // `--fault-policy /dev/zero` read until memory ran out: a device is not read.
  it('refuses a device', async () => {
    const r = await loadFaultPolicyFile('/dev/zero', 'faults.yaml');
    if (!('diagnostics' in r)) throw new Error('expected diagnostics');
    expect(r.diagnostics.map(formatDiagnostic)).toEqual(['faults.yaml:1:1: error not-a-file: fault policy file is a device, not a regular file']);
  });

  // A pipe on the command line (`--fault-policy <(…)`) is read, in the event loop: its open no longer
  // waits in the thread pool for a writer, where no signal could end the wait.
  it('reads a pipe to its end', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const read = loadFaultPolicyFile(fifo, 'faults.yaml');
    const writer = await open(fifo, 'w');
    await writer.writeFile('retry: { transient: { baseMs: 500, maxMs: 60000 } }\n');
    await writer.close();
    const r = await read;
    if ('diagnostics' in r) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
    expect(r.policy.transient).toMatchObject({ baseMs: 500, maxMs: 60000 });
  });

  it('refuses a file past the size limit goal files have', async () => {
    const big = join(dir, 'big.yaml');
    writeFileSync(big, Buffer.alloc(8388609, ' '));
    const r = await loadFaultPolicyFile(big, 'faults.yaml');
    if (!('diagnostics' in r)) throw new Error('expected diagnostics');
    expect(r.diagnostics.map(formatDiagnostic)).toEqual(['faults.yaml:1:1: error file-too-large: fault policy file is larger than 8388608 bytes']);
  });
});
