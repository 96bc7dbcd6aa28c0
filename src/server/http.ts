import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import { isIP } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { hostname } from 'node:os';
import { assertNever } from '../runtime/index.ts';
import type { OperatorRetryAllAnswer, OperatorRetryAnswer } from '../runtime/index.ts';

/** What the HTTP surface reads from the daemon. */
export interface DaemonProbe {
  /** Goals loaded and every node reconciled once. */
  ready(): { ready: boolean; reason?: string };
  status(): unknown;
  /** Releases a node held by the fault policy (or failed, waiting out its backoff); changes nothing for an unknown node or any other. */
  retry(node: string): OperatorRetryAnswer;
  /** Releases every node `retry` would release, but those a policy holds; returns their ids and the open circuits they wait for. */
  retryAll(): OperatorRetryAllAnswer;
}

/** How long a client may take over its request: a scanner or a stuck client must not keep a connection for Node's 60 s / 300 s. */
export interface HttpTimeouts {
  /** Until the request's headers are complete (default 10 s). */
  readonly headersTimeoutMs?: number;
  /** Until the whole request is in (default 30 s): none of ours has a body worth waiting for. */
  readonly requestTimeoutMs?: number;
}

/** The resources served: the methods each takes (the Allow header of a 405). */
const READ = ['GET', 'HEAD'] as const;
const RETRY = ['POST'] as const;
const RETRY_ALL = '/retry';
const RETRY_PREFIX = '/retry/';

/** Whether a peer address is this machine's loopback (IPv4, IPv6, or IPv4 mapped into IPv6). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return address === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/**
 * Whether a connection comes from this machine: from a loopback address, or from the very address it
 * reached (a connection to one of the machine's own addresses leaves from that address; no other
 * host can open one with it, a TCP handshake needs the answer).
 */
export function fromThisMachine(remote: string | undefined, local: string | undefined): boolean {
  if (isLoopback(remote)) return true;
  const plain = (a: string | undefined): string | undefined => (a?.startsWith('::ffff:') === true ? a.slice('::ffff:'.length) : a);
  return remote !== undefined && plain(remote) === plain(local);
}

/**
 * Whether a request comes from a web page (a browser sends `Origin` on a cross-site POST and
 * `Sec-Fetch-Site` on every request), or names a host the daemon is not (`Host: evil.example`, as a page
 * whose name was rebound to this address sends). Either way a page in the operator's browser, not
 * a tool of theirs: it may not read the state nor release held nodes. The names a tool uses pass: an
 * address, `localhost`, the machine's name (os.hostname(), exactly), the `--listen` host, each also with a trailing dot.
 */
export function fromWebPage(headers: IncomingHttpHeaders, listenHost: string): string | undefined {
  // Not Sec-Fetch-Mode: Node's own fetch sends that one (`cors`); no browser leaves out Sec-Fetch-Site.
  if (headers.origin !== undefined || headers['sec-fetch-site'] !== undefined) return 'a request from a web page (an Origin or Sec-Fetch-Site header)';
  const host = headers.host;
  if (host === undefined) return undefined;
  // A name ending in the root's dot (`localhost.`) is the same name.
  const name = (host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '')).toLowerCase().replace(/\.$/, '');
  // The machine's name exactly as the system has it, not any name under it: `vm.attacker.example` is anyone's to point here.
  const known = isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || name === listenHost.toLowerCase().replace(/\.$/, '') || name === hostname().toLowerCase();
  return known ? undefined : `a request for host ${JSON.stringify(host)}, which is not this daemon's`;
}

/** What Node's parser or its timeouts refuse, answered as the API answers: JSON with a Content-Length. */
const CLIENT_ERRORS: Readonly<Record<string, { code: number; status: string; error: string }>> = {
  HPE_HEADER_OVERFLOW: { code: 431, status: 'Request Header Fields Too Large', error: 'the request line and headers are too large' },
  ERR_HTTP_REQUEST_TIMEOUT: { code: 408, status: 'Request Timeout', error: 'the request did not arrive in time' },
};

/**
 * A request Node refuses before our handler sees it (malformed, too large, too slow): Node's own answer
 * has no body and no length. The connection is closed after it, as Node does; a socket that cannot be
 * written to, or reset by the client, is only destroyed.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const answer = CLIENT_ERRORS[err.code ?? ''] ?? { code: 400, status: 'Bad Request', error: `malformed request (${err.code ?? err.message})` };
  const text = `${JSON.stringify({ error: answer.error })}\n`;
  const head = [`HTTP/1.1 ${answer.code} ${answer.status}`, 'content-type: application/json', 'cache-control: no-store', `content-length: ${Buffer.byteLength(text)}`, 'connection: close'];
  socket.end(`${head.join('\r\n')}\r\n\r\n${text}`, () => socket.destroy());
}

/**
 * The path a request asks for, and the host it names: from its target in origin form (`/status`), or
 * in absolute form (`http://host:7474/status`, which a server must accept, RFC 9112 §3.2.2), whose
 * authority then stands for the Host header.
 */
function requestTarget(req: IncomingMessage): { path: string; host: string | undefined } {
  const target = req.url ?? '/';
  if (!target.startsWith('/') && URL.canParse(target)) {
    const url = new URL(target);
    if (url.protocol === 'http:' || url.protocol === 'https:') return { path: url.pathname, host: url.host };
  }
  return { path: target.split('?')[0] ?? '/', host: req.headers.host };
}

/**
 * Serves /healthz (the process is alive), /readyz (first round done), /status (JSON), POST /retry/NODE
 * (200 `{released, circuit?}`, 404 unknown, 409 not held, 403 from another machine) and POST /retry (every
 * held node: 200 `{released: [ids], circuits?}`, 403 from another machine); `circuit`, `circuits`: the open
 * circuits released nodes wait for. A known path asked with another method is 405 with an Allow
 * header; any other path is 404 whatever the method. /status and POST are refused (403) to a web page
 * (`fromWebPage`); the probes answer anyone.
 */
export function startHttpServer(listen: { host: string; port: number }, probe: DaemonProbe, timeouts: HttpTimeouts = {}): Promise<{ server: Server; address: AddressInfo }> {
  const headersTimeout = timeouts.headersTimeoutMs ?? 10_000;
  const requestTimeout = Math.max(timeouts.requestTimeoutMs ?? 30_000, headersTimeout);
  // Node checks its timeouts every connectionsCheckingInterval (30 s by default): a tenth of the headers' limit keeps them close to exact.
  const connectionsCheckingInterval = Math.max(100, Math.min(1_000, Math.floor(headersTimeout / 10)));
  const server = createServer({ headersTimeout, requestTimeout, connectionsCheckingInterval }, (req, res) => {
    const send = (code: number, body: unknown, headers: Record<string, string> = {}): void => {
      // A length, not chunks: HEAD gets the same headers as GET, and a client knows when the answer is whole.
      const text = `${JSON.stringify(body)}\n`;
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(text)), ...headers });
      res.end(req.method === 'HEAD' ? undefined : text);
    };
    const { path, host } = requestTarget(req);
    const methods = path === RETRY_ALL || path.startsWith(RETRY_PREFIX) ? RETRY : path === '/healthz' || path === '/readyz' || path === '/status' ? READ : undefined;
    if (methods === undefined) return send(404, { error: 'not found', paths: ['/healthz', '/readyz', '/status', 'POST /retry/NODE', 'POST /retry'] });
    if (!(methods as readonly string[]).includes(req.method ?? '')) return send(405, { error: `method not allowed; ${path} takes ${methods.join(', ')}` }, { allow: methods.join(', ') });
    if (methods === RETRY || path === '/status') {
      const refused = fromWebPage({ ...req.headers, host }, listen.host);
      if (refused !== undefined) return send(403, { error: `${refused} is refused: this API is for the command line and tools on this machine` });
    }
    if (methods === RETRY) {
      // Only from this machine, whatever address the daemon listens on (0.0.0.0 for a load balancer's
      // probes, or one of the machine's addresses): this changes state, and the API has no other authentication.
      if (!fromThisMachine(req.socket.remoteAddress, req.socket.localAddress)) return send(403, { error: 'POST /retry is accepted only from this machine' });
      if (path === RETRY_ALL) {
        const all = probe.retryAll();
        return send(200, all.circuits.length === 0 ? { released: all.released } : all);
      }
      let node: string;
      try {
        node = decodeURIComponent(path.slice(RETRY_PREFIX.length));
      } catch {
        return send(400, { error: 'malformed node id in the path' });
      }
      const answer = probe.retry(node);
      switch (answer.status) {
        case 'released':
          return send(200, answer.circuit === undefined ? { released: node } : { released: node, circuit: answer.circuit });
        case 'unknown':
          return send(404, { error: `unknown node "${node}"` });
        case 'not-held':
          // Held by a policy (status held too) is not the fault policy's hold that retry releases.
          return send(409, { error: answer.current === 'held' ? `node "${node}" is held by a policy, not the fault policy; retry does not release it` : `node "${node}" is not held`, node, status: answer.current });
        default:
          return assertNever(answer);
      }
    }
    if (path === '/healthz') return send(200, { status: 'ok' });
    if (path === '/readyz') {
      const r = probe.ready();
      return send(r.ready ? 200 : 503, r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason });
    }
    return send(200, probe.status());
  });
  server.keepAliveTimeout = 5000;
  server.on('clientError', answerClientError);
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
