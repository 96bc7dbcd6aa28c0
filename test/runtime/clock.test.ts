import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../src/runtime/index.ts';

// Node's timers take at most 2^31-1 ms (24.8 days) and fire after 1 ms beyond that: a daemon run
// with `--interval 30d` (or a goal's `interval: 30d`, a fault policy's maxMs) re-observed every
// node in a busy loop. The system clock waits as long as it is asked.
describe('systemClock.setTimeout', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const DAY = 86_400_000;

  it.each([
    { name: 'just past the platform limit', ms: 2 ** 31 },
    { name: '30 days', ms: 30 * DAY },
    { name: 'a year', ms: 365 * DAY },
  ])('waits $name, not 1 ms', ({ ms }) => {
    vi.useFakeTimers();
    const fn = vi.fn();
    systemClock.setTimeout(fn, ms);
    vi.advanceTimersByTime(1000);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(ms - 1001);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('cancels a long wait in any of its parts', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const timer = systemClock.setTimeout(fn, 60 * DAY);
    vi.advanceTimersByTime(40 * DAY);
    timer.cancel();
    vi.advanceTimersByTime(30 * DAY);
    expect(fn).not.toHaveBeenCalled();
  });
});
