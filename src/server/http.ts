import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the HTTP surface reads from the daemon. */
export interface DaemonProbe {
  /** Goals loaded and every node reconciled once. */
  ready(): { ready: boolean; reason?: string };
  status(): unknown;
  /** Releases a node held by the fault policy; false for an unknown node. */
  retry(node: string): boolean;
}

/** Serves /healthz (the process is alive), /readyz (first round done) and /status (JSON). */
export function startHttpServer(listen: { host: string; port: number }, probe: DaemonProbe): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer((req, res) => {
    const send = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'POST' && path.startsWith('/retry/')) {
      // Only from this machine: the daemon listens on loopback by default, and this changes state.
      let node: string;
      try {
        node = decodeURIComponent(path.slice('/retry/'.length));
      } catch {
        return send(400, { error: 'malformed node id in the path' });
      }
      return probe.retry(node) ? send(200, { released: node }) : send(404, { error: `unknown node "${node}"` });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method not allowed' });
    switch (path) {
      case '/healthz':
        return send(200, { status: 'ok' });
      case '/readyz': {
        const r = probe.ready();
        return send(r.ready ? 200 : 503, r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason });
      }
      case '/status':
        return send(200, probe.status());
      default:
        return send(404, { error: 'not found', paths: ['/healthz', '/readyz', '/status', 'POST /retry/NODE'] });
    }
  });
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve({ server, address: server.address() as AddressInfo });
    });
  });
}

export function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text) ?? /^(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const port = Number(m.length === 2 ? m[1] : m[3]);
  if (port > 65535) return undefined;
  if (m.length === 2) return { host: '127.0.0.1', port };
  return { host: m[1] ?? (m[2] === '' ? '127.0.0.1' : m[2]!), port };
}
