import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { takeSignals } from '../../src/cli/launch.ts';
import { stopOnSignals } from '../../src/cli/signals.ts';

// The daemon's one set of signal listeners (the real process's signals are in run-lifecycle.test.ts).
// `process.emit` calls the listeners without signalling the test runner.
const listeners = (): number[] => (['SIGTERM', 'SIGINT', 'SIGHUP'] as const).map((s) => process.listenerCount(s));

describe('stopOnSignals', () => {
  it('aborts on the first SIGTERM/SIGINT, routes later ones and SIGHUP while routed, and removes its listeners on close', () => {
    const before = listeners();
    const stop = stopOnSignals();
    const seen: string[] = [];
    try {
      process.emit('SIGHUP', 'SIGHUP'); // unrouted: ignored
      const unroute = stop.route({ again: (signal) => seen.push(`again ${signal}`), hup: () => seen.push('hup') });
      process.emit('SIGINT', 'SIGINT');
      expect(stop.signal.aborted).toBe(true);
      expect(stop.signal.reason).toBe('SIGINT');
      process.emit('SIGTERM', 'SIGTERM');
      process.emit('SIGHUP', 'SIGHUP');
      unroute();
      process.emit('SIGTERM', 'SIGTERM');
      process.emit('SIGHUP', 'SIGHUP');
      expect(seen).toEqual(['again SIGTERM', 'hup']);
      expect(stop.signal.reason).toBe('SIGINT');
    } finally {
      stop.close();
    }
    expect(listeners()).toEqual(before);
  });
});

describe('main: run without the launcher', () => {
  it('listens for the signals only while it runs', async () => {
    const before = listeners();
    const code = await main(['run', '--interval', 'soon'], { out: () => undefined, env: { DESIREDSTATE_LOG_LEVEL: 'silent' }, cwd: process.cwd() });
    expect(code).toBe(64);
    expect(listeners()).toEqual(before);
  });
});

describe('takeSignals: the launcher takes the signals for `run` from its first moment', () => {
  it.each([
    { argv: ['run'], takes: true },
    { argv: ['--goals', 'g', '--state=s', 'run', '--interval', '5s'], takes: true },
    { argv: ['--format', 'json', 'plan'], takes: false },
    { argv: ['plan', 'run'], takes: false },
    { argv: ['--yes', 'run'], takes: false },
  ])('$argv: $takes', ({ argv, takes }) => {
    const before = listeners();
    const stop = takeSignals(argv);
    try {
      expect(stop !== undefined).toBe(takes);
      expect(listeners()).toEqual(takes ? before.map((n) => n + 1) : before);
    } finally {
      stop?.close();
    }
  });
});
