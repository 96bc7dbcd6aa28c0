import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { assertNever } from '../runtime/index.ts';
import type { OperatorRetryAnswer } from '../runtime/index.ts';

/** What the HTTP surface reads from the daemon. */
export interface DaemonProbe {
  /** Goals loaded and every node reconciled once. */
  ready(): { ready: boolean; reason?: string };
  status(): unknown;
  /** Releases a node held by the fault policy (or failed, waiting out its backoff); changes nothing for an unknown node or any other. */
  retry(node: string): OperatorRetryAnswer;
}

/** Serves /healthz (the process is alive), /readyz (first round done), /status (JSON) and POST /retry/NODE (200 released, 404 unknown, 409 not held). */
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
      const answer = probe.retry(node);
      switch (answer.status) {
        case 'released':
          return send(200, { released: node });
        case 'unknown':
          return send(404, { error: `unknown node "${node}"` });
        case 'not-held':
          return send(409, { error: `node "${node}" is not held`, node, status: answer.current });
        default:
          return assertNever(answer);
      }
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
