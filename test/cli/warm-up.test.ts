import { describe, expect, it } from 'vitest';
import { warmUp } from '../../src/cli/warm-up.ts';

// The start-up snapshot's build runs warmUp (src/cli/snapshot.ts); a failure there only shows as a
// build without a snapshot. Here it runs as the build runs it: it must complete, and check what it ran.
describe('the start-up snapshot warm-up', () => {
  it('runs the role path against its recorded server: observed, one drifted, updated', async () => {
    await expect(warmUp()).resolves.toBeUndefined();
  });
});
