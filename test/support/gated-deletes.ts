import { expect, vi } from 'vitest';
import type { MemoryBackend } from '../../src/backends/memory/index.ts';
import type { BackendNode, InfraBackend } from '../../src/infra/index.ts';
import { fault } from '../../src/runtime/index.ts';
import type { ProvisionResult } from '../../src/runtime/index.ts';
import { wrapMemory } from './controller-harness.ts';

/**
 * A memory backend whose deletes each wait for the test to answer them (`finish`, `fail`), or for their
 * operation's abort (then failed, `delete command aborted`, as an exec command killed). The nodes whose id
 * starts with `k` share a `serialKey` (one file several nodes rewrite): their changes take turns.
 */
export interface GatedDeletes {
  /** The backend to hand the dispatcher, in place of the memory backend. */
  readonly gated: InfraBackend;
  /** Every delete sent to the backend, in the order sent. */
  readonly sent: string[];
  /** The deletes sent and not answered yet. */
  readonly inFlight: ReadonlySet<string>;
  /** The deletes in flight as each was sent, itself included. */
  readonly atSend: (readonly string[])[];
  /** Answers `id`'s delete: done (the resource removed). */
  finish(id: string): void;
  /** Answers `id`'s delete: a transient failure. */
  fail(id: string): void;
  /** From now on, every delete is done at once, those waiting included. */
  letThrough(): void;
}

export function gatedDeletes(backend: MemoryBackend): GatedDeletes {
  const sent: string[] = [];
  const inFlight = new Set<string>();
  const answers = new Map<string, (result: 'done' | 'failed') => void>();
  const atSend: string[][] = [];
  let free = false;
  const gated = {
    ...wrapMemory(backend, 'memory', {
      delete: async (n, ctx): Promise<ProvisionResult> => {
        sent.push(n.id);
        inFlight.add(n.id);
        atSend.push([...inFlight].sort());
        const answer = free
          ? 'done'
          : await new Promise<'done' | 'failed' | 'aborted'>((resolve) => {
              answers.set(n.id, resolve);
              ctx.signal.addEventListener('abort', () => resolve('aborted'), { once: true });
            });
        inFlight.delete(n.id);
        answers.delete(n.id);
        if (answer === 'done') return backend.delete(n, ctx);
        return { status: 'failed', fault: fault('transient', answer === 'aborted' ? 'delete command aborted' : 'delete command failed', { code: answer }) };
      },
    }),
    serialKey: (n: BackendNode) => Promise.resolve(n.id.startsWith('k') ? '/srv/shared.json' : undefined),
  };
  const answer = (id: string, result: 'done' | 'failed'): void => {
    const a = answers.get(id);
    if (a === undefined) throw new Error(`no delete of ${id} in flight`);
    a(result);
  };
  const letThrough = (): void => {
    free = true;
    for (const a of answers.values()) a('done');
  };
  return { gated, sent, inFlight, atSend, finish: (id) => answer(id, 'done'), fail: (id) => answer(id, 'failed'), letThrough };
}

/** Lets the event loop turn a few times: what would start on its own has started. */
export async function turns(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/**
 * Answers the deletes of k1, k2, k3 (one serial key) and x1, x2 (none), removed together with three slots,
 * checking that the k's take their turns one at a time while the x's run beside them; `done`: the deletes' end.
 */
export async function expectSerialKeyTurns(d: GatedDeletes, done: Promise<unknown>): Promise<void> {
  const shared = (): string[] => [...d.inFlight].filter((id) => id.startsWith('k'));
  // One of the three k's, and both x's: the k's waiting their turn hold no slot.
  await vi.waitFor(() => expect(d.inFlight.size).toBe(3));
  expect(shared()).toHaveLength(1);
  expect(d.inFlight.has('x1') && d.inFlight.has('x2')).toBe(true);
  const answered: string[] = [];
  for (let i = 0; i < 3; i++) {
    await vi.waitFor(() => expect(shared().filter((k) => !answered.includes(k))).toHaveLength(1));
    const k = shared().find((id) => !answered.includes(id))!;
    await turns();
    expect(shared()).toEqual([k]);
    d.finish(k);
    answered.push(k);
  }
  d.finish('x1');
  d.finish('x2');
  await done;
  expect([...answered].sort()).toEqual(['k1', 'k2', 'k3']);
  // Never two of them at once, whatever else ran beside them.
  for (const s of d.atSend) expect(s.filter((id) => id.startsWith('k')).length).toBeLessThanOrEqual(1);
  expect(d.sent.filter((id) => id.startsWith('k'))).toEqual(answered);
}
