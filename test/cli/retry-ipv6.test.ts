import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { postToDaemon } from '../../src/cli/commands/state.ts';
import { startHttpServer } from '../../src/server/http.ts';
import { cli, memoryGoalHead, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { warnSkipped } from '../support/skip.ts';

// `retry` reaches a daemon listening on IPv6, a link-local address with its zone (`%eth0`) included:
// fetch cannot name a zone in a URL, and retry used to fail there and refuse to write the store beside the daemon.
const linkLocal = Object.entries(networkInterfaces())
  .flatMap(([name, addrs]) => (addrs ?? []).filter((a) => a.family === 'IPv6' && a.address.startsWith('fe80:')).map((a) => `${a.address}%${name}`))
  .at(0);
const loopback6 = Object.values(networkInterfaces()).some((addrs) => addrs?.some((a) => a.address === '::1') === true);
if (linkLocal === undefined) warnSkipped(['retry-ipv6: no link-local IPv6 address on this machine; the zone tests are skipped']);
if (!loopback6) warnSkipped(['retry-ipv6: no ::1 on this machine; the [::1] test is skipped']);

const p = tempProject('ds-retry6-');
p.write('app.yaml', `${memoryGoalHead('    {}\n')}    - id: good
      type: local.directory
      spec: { path: good }
`);
const daemons = trackDaemons(p.dir);

describe('retry through a daemon on IPv6', () => {
  it.skipIf(linkLocal === undefined)('postToDaemon reaches an API on a link-local address with its zone', async () => {
    const { server, address } = await startHttpServer({ host: linkLocal!, port: 0 }, {
      ready: () => ({ ready: true }),
      status: () => ({}),
      retry: () => ({ status: 'unknown' }),
      retryAll: () => ({ released: ['x'], circuits: [] }),
    });
    try {
      expect(await postToDaemon(`[${address.address}]:${address.port}`, '/retry')).toEqual({ status: 200, ok: true, body: { released: ['x'] } });
    } finally {
      server.close();
    }
  });

  it.each([
    { listen: '[::1]:0', skip: !loopback6 },
    { listen: `[${linkLocal}]:0`, skip: linkLocal === undefined },
  ])('asks the daemon listening on $listen', async ({ listen, skip }) => {
    if (skip) return;
    const d = daemons.start(['--listen', listen, ...p.args], { cwd: p.dir });
    await d.port();
    await eventually(async () => JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout).nodes[0]?.status === 'ready', 15_000, 'good ready');
    const one = await cli(['retry', 'good', '--format', 'json', ...p.args], { cwd: p.dir });
    expect({ code: one.code, out: JSON.parse(one.stdout) }).toEqual({ code: 0, out: { notHeld: 'good', status: 'ready', via: 'daemon' } });
    const all = await cli(['retry', '--all', '--format', 'json', ...p.args], { cwd: p.dir });
    expect({ code: all.code, out: JSON.parse(all.stdout) }).toEqual({ code: 0, out: { released: [], via: 'daemon' } });
    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
  });
});
