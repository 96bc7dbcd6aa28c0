import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type Server } from 'node:http';
import { connect } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { fromThisMachine, isLoopback, parseListen, startHttpServer } from '../../src/server/http.ts';
import { warnSkipped } from '../support/skip.ts';

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
          if (node === 'policy held') return { status: 'not-held', current: 'held' };
          if (node !== 'held node') return { status: 'unknown' };
          released.push(node);
          return { status: 'released' };
        },
        retryAll: () => {
          released.push('*');
          return { released: ['held node', 'failed node'], circuits: [] };
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
    // Held by a policy: its status is held, but not by the fault policy ("is not held", status "held", read as a contradiction).
    const policyHeld = await fetch(`${base}/retry/policy%20held`, { method: 'POST' });
    expect(policyHeld.status).toBe(409);
    expect(await policyHeld.json()).toEqual({ error: 'node "policy held" is held by a policy, not the fault policy; retry does not release it', node: 'policy held', status: 'held' });
    expect(released).toEqual(['held node']);
  });

  it('releases every held node on POST /retry, answering their ids', async () => {
    const all = await fetch(`${base}/retry`, { method: 'POST' });
    expect(all.status).toBe(200);
    expect(await all.json()).toEqual({ released: ['held node', 'failed node'] });
    expect(released).toEqual(['held node', '*']);
    released.splice(1);
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

  // RFC 9110: a 405 names the methods the resource takes; a path that is none of ours is 404 whatever the method.
  it.each([
    { name: 'PUT /status', method: 'PUT', path: '/status', code: 405, allow: 'GET, HEAD' },
    { name: 'POST /healthz', method: 'POST', path: '/healthz', code: 405, allow: 'GET, HEAD' },
    { name: 'DELETE /readyz', method: 'DELETE', path: '/readyz', code: 405, allow: 'GET, HEAD' },
    { name: 'GET /retry/NODE (a read must not change state, nor look like an unknown node)', method: 'GET', path: '/retry/held%20node', code: 405, allow: 'POST' },
    { name: 'GET /retry (a read must not release every node)', method: 'GET', path: '/retry', code: 405, allow: 'POST' },
    { name: 'POST /nowhere', method: 'POST', path: '/nowhere', code: 404, allow: null },
    { name: 'DELETE /', method: 'DELETE', path: '/', code: 404, allow: null },
  ])('$name: $code', async ({ method, path, code, allow }) => {
    const before = released.length;
    const res = await fetch(`${base}${path}`, { method });
    expect(res.status).toBe(code);
    expect(res.headers.get('allow')).toBe(allow);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(typeof ((await res.json()) as { error?: unknown }).error).toBe('string');
    expect(released).toHaveLength(before);
  });

  it('answers HEAD with the headers of GET, Content-Length included, and no body', async () => {
    const [get, head] = await Promise.all([fetch(`${base}/status`), fetch(`${base}/status`, { method: 'HEAD' })]);
    const body = await get.text();
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(Buffer.byteLength(body)));
    expect(get.headers.get('content-length')).toBe(String(Buffer.byteLength(body)));
    expect(await head.text()).toBe('');
  });
});

describe('the daemon HTTP API against web pages', () => {
  let released = 0;
  const probe = { ready: () => ({ ready: true }), status: () => ({ nodes: [] }), retry: () => ({ status: 'unknown' as const }), retryAll: () => ((released++, { released: ['a'], circuits: [] })) };

  // A page in the operator's browser could POST /retry (a cross-site "simple" request needs no
  // preflight), and one whose name was rebound to 127.0.0.1 could read /status.
  it.each([
    { name: 'a cross-site POST (Origin)', method: 'POST', path: '/retry', headers: { origin: 'http://evil.example', 'content-type': 'text/plain' } },
    { name: 'a browser\'s request (Sec-Fetch-Site)', method: 'POST', path: '/retry', headers: { 'sec-fetch-site': 'same-origin' } },
    { name: 'a rebound name reading /status (Host)', method: 'GET', path: '/status', headers: { host: 'evil.example:7474' } },
    { name: 'a rebound name releasing (Host)', method: 'POST', path: '/retry', headers: { host: 'evil.example' } },
    { name: 'a name under the machine\'s (Host)', method: 'POST', path: '/retry', headers: { host: `${hostname()}.attacker.example` } },
    { name: 'a name under the machine\'s reading /status (Host)', method: 'GET', path: '/status', headers: { host: `${hostname()}.attacker.example:7474` } },
  ] as { name: string; method: string; path: string; headers: Record<string, string> }[])('refuses $name with 403, changing nothing', async ({ method, path, headers }) => {
    const { server, address } = await startHttpServer({ host: '127.0.0.1', port: 0 }, probe);
    try {
      const before = released;
      const r = await rawRequest(address.port, method, path, headers);
      expect(r.status).toBe(403);
      expect(r.body).toContain('this API is for the command line and tools on this machine');
      expect(released).toBe(before);
    } finally {
      server.close();
    }
  });

  it.each([
    { name: 'an address', host: '127.0.0.1:1' },
    { name: 'an IPv6 address', host: '[::1]:1' },
    { name: 'localhost', host: 'localhost:1' },
    { name: 'localhost with its root dot', host: 'localhost.:1' },
    { name: 'the machine\'s name', host: `${hostname()}:1` },
    { name: 'the machine\'s name with its root dot', host: `${hostname()}.` },
    { name: 'no Host (HTTP/1.0)', host: undefined },
  ])('answers a tool naming $name; the probes answer any Host', async ({ host }) => {
    const { server, address } = await startHttpServer({ host: '127.0.0.1', port: 0 }, probe);
    try {
      expect((await rawRequest(address.port, 'GET', '/status', host === undefined ? {} : { host })).status).toBe(200);
      expect((await rawRequest(address.port, 'POST', '/retry', host === undefined ? {} : { host })).status).toBe(200);
      expect((await rawRequest(address.port, 'GET', '/healthz', { host: 'lb.internal.example' })).status).toBe(200);
      // Node's fetch, as the CLI's retry uses it (it sends Sec-Fetch-Mode, never Sec-Fetch-Site).
      expect((await fetch(`http://127.0.0.1:${address.port}/retry`, { method: 'POST' })).status).toBe(200);
    } finally {
      server.close();
    }
  });
});

describe('the daemon HTTP API: a request target in absolute form', () => {
  const probe = { ready: () => ({ ready: true }), status: () => ({ nodes: [] }), retry: () => ({ status: 'unknown' as const }), retryAll: () => ({ released: ['a'], circuits: [] }) };

  // RFC 9112 §3.2.2: a server must accept `GET http://host/path`, as a proxy sends it; its authority, not the Host header, names the host.
  it('serves the path of an absolute URL, and checks its authority as the Host', async () => {
    const { server, address } = await startHttpServer({ host: '127.0.0.1', port: 0 }, probe);
    try {
      const at = `http://127.0.0.1:${address.port}`;
      expect(await rawRequest(address.port, 'GET', `${at}/readyz`, { host: `127.0.0.1:${address.port}` })).toMatchObject({ status: 200, body: '{"status":"ready"}\n' });
      expect(await rawRequest(address.port, 'GET', `${at}/status?x=1`, { host: 'localhost' })).toMatchObject({ status: 200, body: '{"nodes":[]}\n' });
      expect((await rawRequest(address.port, 'POST', `${at}/retry`, { host: 'localhost' })).status).toBe(200);
      expect((await rawRequest(address.port, 'GET', `${at}/nope`, { host: 'localhost' })).status).toBe(404);
      // A rebound name in the target is refused whatever the Host header says.
      expect((await rawRequest(address.port, 'GET', `http://evil.example:${address.port}/status`, { host: 'localhost' })).status).toBe(403);
    } finally {
      server.close();
    }
  });
});

describe('the daemon HTTP API: requests Node refuses itself', () => {
  const probe = { ready: () => ({ ready: true }), status: () => ({ nodes: [] }), retry: () => ({ status: 'unknown' as const }), retryAll: () => ({ released: [], circuits: [] }) };

  // Answered as the API answers, JSON with a Content-Length, and the connection closed; not Node's bare status line.
  it.each([
    { name: 'a malformed header', send: 'GET /healthz HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n', code: 400, error: /^malformed request \(HPE_/ },
    { name: 'an overlong URL', send: `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, code: 431, error: /^the request line and headers are too large$/ },
    { name: 'headers that stop half way', send: 'GET /healthz HTTP/1.1\r\nHost: x\r\n', code: 408, error: /^the request did not arrive in time$/ },
  ])('answers $name with $code, JSON and a Content-Length', async ({ send, code, error }) => {
    const { server, address } = await startHttpServer({ host: '127.0.0.1', port: 0 }, probe, { headersTimeoutMs: 300, requestTimeoutMs: 600 });
    try {
      const data = await new Promise<string>((resolve, reject) => {
        const socket = connect(address.port, '127.0.0.1', () => socket.write(send));
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      const [head = '', body = ''] = data.split('\r\n\r\n');
      expect(head.split('\r\n')[0]).toMatch(new RegExp(`^HTTP/1\\.1 ${code} `));
      expect(head).toMatch(/\r\ncontent-type: application\/json\r\n/i);
      expect(head).toMatch(/\r\nconnection: close(\r\n|$)/i);
      expect(head).toMatch(new RegExp(`\r\ncontent-length: ${Buffer.byteLength(body)}(\r\n|$)`, 'i'));
      expect((JSON.parse(body) as { error: string }).error).toMatch(error);
      expect((await fetch(`http://127.0.0.1:${address.port}/healthz`)).status).toBe(200);
    } finally {
      server.close();
    }
  });
});

/** One HTTP/1.1 request with exactly these headers (fetch would set Host and others itself); no Host header at all when none is given. */
function rawRequest(port: number, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      const lines = [`${method} ${path} HTTP/${headers.host === undefined ? '1.0' : '1.1'}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), 'connection: close', 'content-length: 0', '', ''];
      socket.write(lines.join('\r\n'));
    });
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
    socket.on('error', reject);
  });
}

describe('the daemon HTTP API against slow clients', () => {
  const probe = { ready: () => ({ ready: true }), status: () => ({ nodes: [] }), retry: () => ({ status: 'unknown' as const }), retryAll: () => ({ released: [], circuits: [] }) };

  it('times out a request that never finishes its headers by default well before Node\'s 60 s', async () => {
    const { server } = await startHttpServer({ host: '127.0.0.1', port: 0 }, probe);
    try {
      expect(server.headersTimeout).toBeLessThanOrEqual(10_000);
      expect(server.requestTimeout).toBeLessThanOrEqual(30_000);
    } finally {
      server.close();
    }
  });

  it.each([
    { name: 'a client that sends nothing', send: '' },
    { name: 'a client that stops half way through its headers', send: 'GET /healthz HTTP/1.1\r\nHost: x\r\n' },
  ])('drops $name, and keeps serving others meanwhile', async ({ send }) => {
    const { server, address } = await startHttpServer({ host: '127.0.0.1', port: 0 }, probe, { headersTimeoutMs: 300, requestTimeoutMs: 600 });
    try {
      const started = Date.now();
      const socket = connect(address.port, '127.0.0.1', () => void (send === '' || socket.write(send)));
      const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
      socket.on('error', () => undefined);
      socket.resume();
      expect((await fetch(`http://127.0.0.1:${address.port}/healthz`)).status).toBe(200);
      expect(await closed).toBeLessThan(5_000);
    } finally {
      server.close();
      server.closeAllConnections();
    }
  });
});

describe('POST /retry from another machine', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['192.0.2.2', false],
    ['::ffff:192.0.2.2', false],
    ['fd00::2', false],
    [undefined, false],
  ])('isLoopback(%s) is %s', (address, expected) => {
    expect(isLoopback(address)).toBe(expected);
  });

  it.each([
    ['127.0.0.1', '127.0.0.1', true],
    ['::ffff:127.0.0.1', '::ffff:192.0.2.2', true],
    ['192.0.2.2', '192.0.2.2', true],
    ['::ffff:192.0.2.2', '192.0.2.2', true],
    ['fd00::2', 'fd00::2', true],
    ['192.0.2.3', '192.0.2.2', false],
    ['192.0.2.2', '127.0.0.1', false],
    ['fd00::3', 'fd00::2', false],
    [undefined, undefined, false],
    [undefined, '192.0.2.2', false],
  ])('fromThisMachine(%s → %s) is %s', (remote, local, expected) => {
    expect(fromThisMachine(remote, local)).toBe(expected);
  });

  // The daemon may listen on 0.0.0.0 for a load balancer's probes, or on one of the machine's own
  // addresses: the probes answer anyone, a release only this machine (loopback, or a connection from
  // the address it reached). Another host is a connection from another address: here, one bound to
  // the machine's external address and sent to its loopback, which no host but this one could open.
  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && !a.internal && a.family === 'IPv4')?.address;
  if (external === undefined) warnSkipped(['SKIPPING the POST /retry test from another address: this machine has no non-loopback IPv4 address to ask from.']);
  it.skipIf(external === undefined)('is 403 from another address, while the probes answer it; accepted from this machine at any of its addresses', async () => {
    let asked = 0;
    const s = await startHttpServer(
      { host: '0.0.0.0', port: 0 },
      {
        ready: () => ({ ready: true }),
        status: () => ({ nodes: [] }),
        retry: () => {
          asked++;
          return { status: 'released' };
        },
        retryAll: () => {
          asked++;
          return { released: [], circuits: [] };
        },
      },
    );
    const from = (localAddress: string, path: string, method = 'POST'): Promise<{ status: number; body: unknown }> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: s.address.port, localAddress, method, path }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await from(external!, '/healthz', 'GET')).toMatchObject({ status: 200 });
      expect(await from(external!, '/retry/a')).toEqual({ status: 403, body: { error: 'POST /retry is accepted only from this machine' } });
      expect((await from(external!, '/retry')).status).toBe(403);
      expect(asked).toBe(0);
      expect((await fetch(`http://127.0.0.1:${s.address.port}/retry/a`, { method: 'POST' })).status).toBe(200);
      expect((await fetch(`http://${external}:${s.address.port}/retry/a`, { method: 'POST' })).status).toBe(200);
      expect((await fetch(`http://${external}:${s.address.port}/retry`, { method: 'POST' })).status).toBe(200);
      expect(asked).toBe(3);
    } finally {
      s.server.close();
    }
  });
});
