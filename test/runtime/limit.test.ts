import { describe, expect, it } from 'vitest';
import { forEachLimit, KeyedSerializer, KeyedSlots, mapLimit, Pacer, Semaphore } from '../../src/runtime/index.ts';

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

describe('mapLimit / forEachLimit', () => {
  it.each([
    { name: 'fewer items than the limit', n: 3, limit: 10 },
    { name: 'more items than the limit', n: 50, limit: 4 },
    { name: 'a limit of one runs them in order', n: 5, limit: 1 },
  ])('$name: results in input order, as many in flight as the limit allows and never more', async ({ n, limit }) => {
    let inFlight = 0;
    let peak = 0;
    // Each call stays in flight over a timer: the calls started meanwhile overlap it.
    const out = await mapLimit(Array.from({ length: n }, (_, i) => i), limit, async (x) => {
      peak = Math.max(peak, ++inFlight);
      await tick();
      inFlight--;
      return x * 2;
    });
    expect(out).toEqual(Array.from({ length: n }, (_, i) => i * 2));
    expect(peak).toBe(Math.min(n, limit));
  });

  it('forEachLimit visits every item once', async () => {
    const seen: number[] = [];
    await forEachLimit([1, 2, 3, 4], 2, async (x) => {
      await tick();
      seen.push(x);
    });
    expect(seen.sort()).toEqual([1, 2, 3, 4]);
  });
});

describe('KeyedSerializer', () => {
  it('runs tasks of one key one after another, other keys alongside, and survives a failure', async () => {
    const q = new KeyedSerializer();
    const log: string[] = [];
    const task = (name: string, fail = false) => async (): Promise<string> => {
      log.push(`start ${name}`);
      await tick();
      log.push(`end ${name}`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([q.run('a', task('a1', true)), q.run('a', task('a2')), q.run('b', task('b1'))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    // a2 starts only after a1 ended; b1 ran alongside a1.
    expect(log.indexOf('start a2')).toBeGreaterThan(log.indexOf('end a1'));
    expect(log.indexOf('start b1')).toBeLessThan(log.indexOf('end a1'));
  });

  it('drops a waiter whose signal aborts: it rejects with a transient fault and never runs, the next waits only for the running one, and the key is forgotten once done', async () => {
    const q = new KeyedSerializer();
    const started: string[] = [];
    let release = (): void => undefined;
    const holding = q.run('a', () => {
      started.push('holder');
      return new Promise<string>((r) => (release = () => r('holder')));
    });
    const stop = new AbortController();
    const left = q.run('a', () => {
      started.push('left');
      return Promise.resolve('left');
    }, stop.signal);
    const next = q.run('a', () => {
      started.push('next');
      return Promise.resolve('next');
    });
    await tick();
    stop.abort();
    // It leaves while the holder still runs: the reject does not wait for its turn.
    await expect(left).rejects.toMatchObject({ fault: { class: 'transient', code: 'aborted' } });
    expect(started).toEqual(['holder']);
    release();
    await expect(Promise.all([holding, next])).resolves.toEqual(['holder', 'next']);
    expect(started).toEqual(['holder', 'next']);
    // A signal aborted before the call rejects at once.
    await expect(q.run('b', () => Promise.resolve('b'), stop.signal)).rejects.toMatchObject({ fault: { code: 'aborted' } });
    await tick();
    expect(q['tails'].size).toBe(0);
  });
});

describe('Pacer', () => {
  it('lets the event loop turn once a slice has run, one turn for every caller that asks meanwhile', async () => {
    const pacer = new Pacer(0);
    let turned = false;
    setImmediate(() => (turned = true));
    const first = pacer.pace();
    expect(first).toBeInstanceOf(Promise);
    expect(pacer.pace()).toBe(first);
    expect(turned).toBe(false);
    await first;
    expect(turned).toBe(true);
  });

  it('asks for no turn within a slice, and starts the next slice after a turn', async () => {
    const pacer = new Pacer(60_000);
    expect(pacer.pace()).toBeUndefined();
    const busy = new Pacer(0);
    await busy.pace();
    // Right after its turn, a slice of 0 ms has already run out again: the next call turns again.
    expect(busy.pace()).toBeInstanceOf(Promise);
  });
});

describe('Semaphore', () => {
  it('holds at most its size in flight, a weighted task taking that many, in the order they asked', async () => {
    const slots = new Semaphore(3);
    let inFlight = 0;
    let most = 0;
    const order: string[] = [];
    const task = (name: string, weight: number) =>
      slots.run(async () => {
        inFlight += Math.min(weight, 3); // a weight past the size takes all of it
        most = Math.max(most, inFlight);
        order.push(name);
        for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
        inFlight -= Math.min(weight, 3);
        return name;
      }, weight);
    const names = await Promise.all([task('a', 1), task('b', 1), task('heavy', 3), task('c', 1), task('huge', 99)]);
    expect(names).toEqual(['a', 'b', 'heavy', 'c', 'huge']);
    expect(most).toBe(3);
    // The heavy task waited for a and b, and c waited for it: none overtook one that asked before.
    expect(order).toEqual(['a', 'b', 'heavy', 'c', 'huge']);
  });

  it.each([
    { n: 5, size: 3 },
    { n: 2, size: 3 },
    { n: 4, size: 1 },
  ])('runs $n unit tasks at once up to its size $size, never more', async ({ n, size }) => {
    const slots = new Semaphore(size);
    let inFlight = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: n }, () =>
        slots.run(async () => {
          peak = Math.max(peak, ++inFlight);
          await tick();
          inFlight--;
        }),
      ),
    );
    expect(peak).toBe(Math.min(n, size));
  });

  it('drops a waiter whose signal aborts: it rejects with a transient fault and never runs, the tasks behind it start, and one that started runs on', async () => {
    const slots = new Semaphore(2);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const started: string[] = [];
    const holder = new AbortController();
    const holding = slots.run(async () => {
      started.push('holder');
      await gate;
      return 'holder';
    }, 1, holder.signal);
    const heavy = new AbortController();
    const waiting = slots.run(async () => void started.push('heavy'), 2, heavy.signal);
    // One unit is free, but the light task asked after the heavy one: it waits behind it.
    let light!: () => void;
    const lightStarted = new Promise<void>((r) => (light = r));
    const behind = slots.run(async () => {
      started.push('light');
      light();
    });
    expect(started).toEqual(['holder']);

    heavy.abort();
    await expect(waiting).rejects.toMatchObject({ fault: { class: 'transient', code: 'aborted' } });
    // Started with the holder still in flight: the heavy task no longer holds it back.
    await lightStarted;
    await behind;
    // The holder's signal, aborted after it started, leaves it running and the queue as it is.
    holder.abort();
    release();
    expect(await holding).toBe('holder');
    expect(started).toEqual(['holder', 'light']);

    // A signal aborted before the task must wait rejects at once; with units free, the task runs.
    const stop = new AbortController();
    stop.abort();
    const blocker = slots.run(() => gate.then(() => 'free'), 2);
    await expect(slots.run(async () => 'queued', 1, stop.signal)).rejects.toMatchObject({ fault: { code: 'aborted' } });
    expect(await blocker).toBe('free');
    expect(await slots.run(async () => 'ran', 1, stop.signal)).toBe('ran');
  });

  it('frees its slots when a task throws', async () => {
    const slots = new Semaphore(1);
    await expect(slots.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await slots.run(() => Promise.resolve('next'))).toBe('next');
  });
});

describe('KeyedSlots', () => {
  it('a task waiting for its key\'s turn holds no slot: one of another key, or of none, takes it meanwhile', async () => {
    const slots = new KeyedSlots(2);
    const started: string[] = [];
    let release = (): void => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const task = (name: string, wait?: Promise<void>) => async (): Promise<string> => {
      started.push(name);
      await wait;
      return name;
    };
    const first = slots.run(task('a1', gate), { key: 'a' });
    const second = slots.run(task('a2'), { key: 'a' });
    // One slot is a1's; a2 waits for a1, in no slot: b1 and the one without a key take the other in turn.
    expect(await Promise.all([slots.run(task('b1'), { key: 'b' }), slots.run(task('none'))])).toEqual(['b1', 'none']);
    expect(started).not.toContain('a2');
    release();
    expect(await Promise.all([first, second])).toEqual(['a1', 'a2']);
    expect(started.at(-1)).toBe('a2');
  });
});
