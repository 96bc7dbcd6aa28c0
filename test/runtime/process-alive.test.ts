import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { isAlive, processStat } from '../../src/runtime/index.ts';
import { holdsWithin } from '../support/backend.ts';

const linux = existsSync('/proc/self/stat');

describe('isAlive', () => {
  it('this process is alive; a pid that was never given out is not', () => {
    expect(isAlive(process.pid)).toBe(true);
    // Above any pid_max Linux allows (4194304).
    expect(isAlive(2 ** 22 + 12345)).toBe(false);
  });

  it.skipIf(!linux)('a zombie (exited, never reaped by its parent) is not alive; its parent, still running, is', async () => {
    // sh starts a child that exits shortly (after sh has become `sleep`, which never waits for it, so
    // sh cannot have reaped it): the child stays a zombie as long as the sleep runs.
    const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const [chunk] = (await once(parent.stdout, 'data')) as [Buffer];
      const zombie = Number(chunk.toString('utf8').trim());
      expect(Number.isSafeInteger(zombie) && zombie > 0).toBe(true);
      expect(await holdsWithin(() => processStat(zombie)?.state === 'Z', 10_000)).toBe(true);
      // The pid still exists (a signal 0 reaches it): only its state tells.
      expect(() => process.kill(zombie, 0)).not.toThrow();
      expect(isAlive(zombie)).toBe(false);
      expect(isAlive(parent.pid!)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
      await once(parent, 'exit').catch(() => undefined);
    }
  });
});
