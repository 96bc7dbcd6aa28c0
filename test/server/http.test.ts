import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { parseListen, startHttpServer } from '../../src/server/http.ts';

describe('parseListen', () => {
  it.each([
    ['127.0.0.1:7474', { host: '127.0.0.1', port: 7474 }],
    ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }],
    [':8080', { host: '127.0.0.1', port: 8080 }],
    ['[::1]:7474', { host: '::1', port: 7474 }],
    ['7474', { host: '127.0.0.1', port: 7474 }],
    ['localhost:99999', undefined],
    ['99999', undefined],
    ['host', undefined],
    ['host:port', undefined],
  ])('%s', (text, expected) => {
    expect(parseListen(text)).toEqual(expected);
  });
});

describe('the daemon HTTP API', () => {
  let server: Server;
  let base: string;
  let ready = false;
  const released: string[] = [];

  beforeAll(async () => {
    const s = await startHttpServer(
      { host: '127.0.0.1', port: 0 },
      {
        ready: () => (ready ? { ready: true } : { ready: false, reason: 'first reconcile round in progress' }),
        status: () => ({ nodes: [{ id: 'a' }] }),
        retry: (node) => {
          if (node === 'ready node') return { status: 'not-held', current: 'ready' };
          if (node !== 'held node') return { status: 'unknown' };
          released.push(node);
          return { status: 'released' };
        },
      },
    );
    server = s.server;
    base = `http://127.0.0.1:${s.address.port}`;
  });
  afterAll(() => {
    server.close();
  });

  it('serves /healthz, /readyz (503 until ready) and /status', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ status: 'not ready', reason: 'first reconcile round in progress' });
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${base}/status`)).json()).toEqual({ nodes: [{ id: 'a' }] });
  });

  it('releases a node on POST /retry/NODE (percent-decoded), 404 for an unknown one, 409 for one not held', async () => {
    expect((await fetch(`${base}/retry/held%20node`, { method: 'POST' })).status).toBe(200);
    expect(released).toEqual(['held node']);
    expect((await fetch(`${base}/retry/nope`, { method: 'POST' })).status).toBe(404);
    const notHeld = await fetch(`${base}/retry/ready%20node`, { method: 'POST' });
    expect(notHeld.status).toBe(409);
    expect(await notHeld.json()).toEqual({ error: 'node "ready node" is not held', node: 'ready node', status: 'ready' });
    expect(released).toEqual(['held node']);
  });

  it('answers a malformed path with 400 and keeps serving', async () => {
    const bad = await fetch(`${base}/retry/%E0%A4%A`, { method: 'POST' });
    expect(bad.status).toBe(400);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('refuses other methods and paths', async () => {
    expect((await fetch(`${base}/status`, { method: 'PUT' })).status).toBe(405);
    expect((await fetch(`${base}/nowhere`)).status).toBe(404);
  });
});
