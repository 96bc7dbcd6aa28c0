import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { cli, oneFileGoal, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { warnSkipped } from '../support/skip.ts';

// The real daemon's API on the addresses an operator binds: loopback IPv6 and every IPv4 interface.
// `status` finds the daemon at the address it recorded, and `retry` asks it there (an IPv6 address in brackets).
const hasIpv6 = await new Promise<boolean>((resolve) => {
  const s = createServer();
  s.once('error', () => resolve(false));
  s.listen(0, '::1', () => s.close(() => resolve(true)));
});
if (!hasIpv6) warnSkipped(['SKIPPING the daemon API test on [::1]: this machine has no IPv6 loopback.']);

const p = tempProject('ds-daemon-api-');
p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));
const daemons = trackDaemons(p.dir);

/** The daemon listening on `listen`, asked at `host`: its API, and the CLI's `status` and `retry` through it. */
async function daemonApiOn(listen: string, host: string): Promise<void> {
  const d = daemons.start(['--listen', listen, '--interval', '1h', ...p.args], { cwd: p.dir });
  const port = await d.port();
  const base = `http://${host}:${port}`;
  await eventually(async () => (await fetch(`${base}/readyz`)).status === 200, 15_000, 'ready');
  expect((await fetch(`${base}/healthz`, { method: 'HEAD' })).status).toBe(200);
  const status = (await (await fetch(`${base}/status`)).json()) as Record<string, unknown>;
  expect(status).toEqual({ nodes: [expect.objectContaining({ id: 'conf', status: 'ready', updatedAt: expect.any(Number) })], goalErrors: null, emptyGoals: false, queue: expect.objectContaining({ handedOut: expect.any(Number) }), circuits: [] });
  // The one node, reconciled at least once before /readyz said so.
  expect((status.queue as { handedOut: number }).handedOut).toBeGreaterThanOrEqual(1);

  const s = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
  expect((JSON.parse(s.stdout) as { daemon: unknown }).daemon).toEqual({ running: true, pid: d.child.pid, listen: `${listen.replace(/:0$/, '')}:${port}` });
  const r = await cli(['retry', 'conf', '--format', 'json', ...p.args], { cwd: p.dir });
  expect(JSON.parse(r.stdout)).toEqual({ notHeld: 'conf', status: 'ready', via: 'daemon' });
  const unknown = await cli(['retry', 'nope', '--format', 'json', ...p.args], { cwd: p.dir });
  expect(unknown.code).toBe(1);
  expect(JSON.parse(unknown.stdout)).toEqual({ unknown: 'nope', via: 'daemon' });

  d.kill('SIGTERM');
  expect((await d.exited).code).toBe(0);
}

describe('the daemon API on its --listen address', () => {
  it.skipIf(!hasIpv6)('[::1]:0', () => daemonApiOn('[::1]:0', '[::1]'));
  it('0.0.0.0:0', () => daemonApiOn('0.0.0.0:0', '127.0.0.1'));
});
