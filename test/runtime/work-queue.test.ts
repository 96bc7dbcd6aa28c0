import { describe, expect, it } from 'vitest';
import { FakeClock, flushMicrotasks } from '../../src/runtime/clock.ts';
import { WorkQueue } from '../../src/runtime/work-queue.ts';

/** Takes every id that is due now, without waiting. */
async function drain(q: WorkQueue<string>): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    if (q.stats().ready === 0) return out;
    const id = await q.get();
    if (id === undefined) return out;
    out.push(id);
    q.done(id);
  }
}

describe('WorkQueue', () => {
  it.each([
    { name: 'an id added twice is processed once', ops: (q: WorkQueue<string>) => (q.add('a'), q.add('b'), q.add('a')), expected: ['a', 'b'] },
    { name: 'a delayed add for an id already due is ignored', ops: (q: WorkQueue<string>) => (q.add('a'), q.addAfter('a', 1000)), expected: ['a'] },
    { name: 'add supersedes a pending delayed entry', ops: (q: WorkQueue<string>) => (q.addAfter('a', 1000), q.add('a')), expected: ['a'] },
    { name: 'addAfter with 0 is add', ops: (q: WorkQueue<string>) => q.addAfter('a', 0), expected: ['a'] },
    { name: 'addAfter with NaN is add', ops: (q: WorkQueue<string>) => q.addAfter('a', Number.NaN), expected: ['a'] },
    { name: 'first in, first out', ops: (q: WorkQueue<string>) => ['c', 'a', 'b'].forEach((id) => q.add(id)), expected: ['c', 'a', 'b'] },
  ])('$name', async ({ ops, expected }) => {
    const clock = new FakeClock(0);
    const q = new WorkQueue<string>({ clock });
    ops(q);
    expect(await drain(q)).toEqual(expected);
    clock.advance(10_000);
    expect(await drain(q)).toEqual([]); // superseded delayed entries do not fire later
  });

  it.each([
    { name: 'a later delay for an id due sooner is ignored', first: 100, second: 500, dueAt: 100 },
    { name: 'a sooner delay replaces a later one', first: 500, second: 100, dueAt: 100 },
  ])('$name', async ({ first, second, dueAt }) => {
    const clock = new FakeClock(0);
    const q = new WorkQueue<string>({ clock });
    q.addAfter('a', first);
    q.addAfter('a', second);
    expect(q.stats().delayed).toBe(1);
    clock.advance(dueAt - 1);
    expect(await drain(q)).toEqual([]);
    clock.advance(1);
    expect(await drain(q)).toEqual(['a']);
    clock.advance(1000);
    expect(await drain(q)).toEqual([]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('re-queues an id added while processing, after done, never concurrently', async () => {
    const q = new WorkQueue<string>({ clock: new FakeClock(0) });
    q.add('a');
    const first = await q.get();
    expect(first).toBe('a');
    q.add('a');
    q.add('a');
    expect(q.stats()).toEqual({ ready: 0, processing: 1, delayed: 0, handedOut: 1 });
    let second: string | undefined;
    void q.get().then((id) => (second = id));
    await flushMicrotasks();
    expect(second).toBeUndefined(); // not handed out while 'a' is processing
    q.done('a');
    await flushMicrotasks();
    expect(second).toBe('a');
    q.done('a');
    expect(q.stats()).toEqual({ ready: 0, processing: 0, delayed: 0, handedOut: 2 }); // the two adds while processing made one more
  });

  it('a delayed entry that falls due while processing is re-queued after done', async () => {
    const clock = new FakeClock(0);
    const q = new WorkQueue<string>({ clock });
    q.add('a');
    const id = await q.get();
    q.addAfter('a', 100);
    clock.advance(100);
    expect(q.stats()).toEqual({ ready: 0, processing: 1, delayed: 0, handedOut: 1 });
    q.done(id!);
    expect(await drain(q)).toEqual(['a']);
  });

  it('claim takes an id out of turn, due or delayed: no get() has it until done, and an add meanwhile hands it out after', async () => {
    const clock = new FakeClock(0);
    const q = new WorkQueue<string>({ clock });
    q.addAfter('a', 100);
    q.add('b');
    expect(q.claim('a')).toBe(true);
    expect(q.claim('b')).toBe(true);
    expect(q.claim('a')).toBe(false); // processing already
    clock.advance(100);
    expect(q.stats()).toEqual({ ready: 0, processing: 2, delayed: 0, handedOut: 0 });
    let idle = false;
    void q.whenIdle().then(() => (idle = true));
    q.add('a');
    expect(await drain(q)).toEqual([]);
    q.done('b');
    q.done('a');
    expect(await drain(q)).toEqual(['a']);
    expect(idle).toBe(true);
    q.shutDown();
    expect(q.claim('a')).toBe(false);
  });

  it('wakes a waiting get() when an item falls due', async () => {
    const clock = new FakeClock(0);
    const q = new WorkQueue<string>({ clock });
    let got: string | undefined;
    void q.get().then((id) => (got = id));
    q.addAfter('x', 250);
    await clock.advanceAsync(249);
    expect(got).toBeUndefined();
    await clock.advanceAsync(1);
    expect(got).toBe('x');
  });

  it('shutDown resolves waiting and later get() with undefined and drops timers', async () => {
    const clock = new FakeClock(0);
    const q = new WorkQueue<string>({ clock });
    const waiting = [q.get(), q.get()];
    q.addAfter('later', 1000);
    q.shutDown();
    expect(await Promise.all(waiting)).toEqual([undefined, undefined]);
    expect(await q.get()).toBeUndefined();
    q.add('ignored');
    expect(q.stats()).toEqual({ ready: 0, processing: 0, delayed: 0, handedOut: 0 });
    expect(clock.pendingTimers()).toBe(0);
  });

  it('whenIdle waits for processing to finish (graceful shutdown)', async () => {
    const q = new WorkQueue<string>({ clock: new FakeClock(0) });
    q.add('a');
    const id = await q.get();
    let idle = false;
    void q.whenIdle().then(() => (idle = true));
    q.shutDown();
    await flushMicrotasks();
    expect(idle).toBe(false);
    q.done(id!);
    await flushMicrotasks();
    expect(idle).toBe(true);
  });

  it('forget drops queued and delayed entries', async () => {
    const clock = new FakeClock(0);
    const q = new WorkQueue<string>({ clock });
    q.add('a');
    q.add('b');
    q.addAfter('c', 10);
    q.forget('a');
    q.forget('c');
    clock.advance(100);
    expect(await drain(q)).toEqual(['b']);
  });

  it('bounded concurrency: N consumers never hold the same id', async () => {
    const q = new WorkQueue<string>({ clock: new FakeClock(0) });
    const inFlight = new Set<string>();
    let maxInFlight = 0;
    const processed: string[] = [];
    const worker = async () => {
      for (let id = await q.get(); id !== undefined; id = await q.get()) {
        expect(inFlight.has(id)).toBe(false);
        inFlight.add(id);
        maxInFlight = Math.max(maxInFlight, inFlight.size);
        await flushMicrotasks();
        if (processed.length < 20) q.add(id); // re-added while processing
        processed.push(id);
        inFlight.delete(id);
        q.done(id);
      }
    };
    for (const id of ['a', 'b', 'c', 'd', 'e']) q.add(id);
    const workers = [worker(), worker(), worker()];
    await flushMicrotasks();
    for (let i = 0; i < 50 && processed.length < 25; i++) await flushMicrotasks();
    await q.whenIdle();
    q.shutDown();
    await Promise.all(workers);
    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(processed.length).toBeGreaterThanOrEqual(20);
  });

  it('orders 100k delayed items by due time with a single timer', async () => {
    const clock = new FakeClock(0);
    const q = new WorkQueue<string>({ clock });
    const n = 100_000;
    const rng = (() => {
      let s = 7;
      return () => (s = (s * 48271) % 2147483647) / 2147483647;
    })();
    const due = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const d = 1 + Math.floor(rng() * 1_000_000);
      due.set(`n${i}`, d);
      q.addAfter(`n${i}`, d);
    }
    expect(clock.pendingTimers()).toBe(1);
    clock.advance(1_000_001);
    const out = await drain(q);
    expect(out).toHaveLength(n);
    expect(new Set(out).size).toBe(n);
    // The first item out of due order, if any.
    expect(out.findIndex((id, i) => i > 0 && due.get(id)! < due.get(out[i - 1]!)!)).toBe(-1);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('fires delayed items in due order as time passes', async () => {
    const clock = new FakeClock(0);
    const q = new WorkQueue<string>({ clock });
    q.addAfter('c', 300);
    q.addAfter('a', 100);
    q.addAfter('b', 200);
    const seen: string[] = [];
    for (const step of [100, 100, 100]) {
      clock.advance(step);
      seen.push(...(await drain(q)));
    }
    expect(seen).toEqual(['a', 'b', 'c']);
  });
});
