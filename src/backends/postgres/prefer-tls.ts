import { Socket } from 'node:net';
import { isIP } from 'node:net';
import { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';

/** The protocol's SSLRequest: length 8, then the code 80877103 (1234 << 16 | 5679). */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/**
 * One connection under `sslmode: prefer`, negotiated as libpq does: the
 * socket asks for TLS and, when the server answers no, goes on in plain on
 * the same socket. pg cannot: on a no it drops the socket and fails, so a
 * client has to connect a second time (another TCP connection, another
 * server process forked). pg is given this stream with its own TLS off, and
 * sees a connection that is already encrypted or knowingly plain.
 *
 * The answer must be one byte and nothing after it: bytes sent before the
 * TLS handshake could be injected by whoever sits on the wire (libpq refuses
 * them too, CVE-2021-23222).
 */
export class PreferTlsStream extends Duplex {
  readonly #raw = new Socket();
  readonly #tls: ConnectionOptions;
  #inner: Socket | undefined;
  /** The TLS connection while its handshake runs (then `#inner`). */
  #securing: Socket | undefined;

  /** `tls`: the options of the TLS connection, when the server offers it (certificates are not verified under prefer). */
  constructor(tls: ConnectionOptions) {
    super({ allowHalfOpen: false });
    this.#tls = tls;
    this.#raw.on('error', (err) => this.destroy(err));
  }

  connect(port: number, host: string): this {
    const raw = this.#raw;
    raw.connect(port, host, () => raw.write(SSL_REQUEST));
    // A server that closes without answering (shutting down, a proxy that refused us): said at once.
    // Once attached, the connection's end is pg's to see (through `#attach`), and this does nothing.
    const closedEarly = (): void => {
      if (this.#inner !== undefined) return;
      this.destroy(new Error(`the server closed the connection ${this.#securing === undefined ? 'before answering the TLS request' : 'during the TLS handshake'}`));
    };
    raw.once('end', closedEarly);
    raw.once('close', closedEarly);
    raw.once('data', (answer: Buffer) => {
      if (answer.length !== 1) {
        this.destroy(new Error('the server sent more than its one-byte answer to the TLS request (refused: it could be injected on the wire)'));
        return;
      }
      if (answer[0] === 0x4e /* N */) {
        this.#attach(raw);
        return;
      }
      if (answer[0] !== 0x53 /* S */) {
        this.destroy(new Error('There was an error establishing an SSL connection'));
        return;
      }
      // node:tls is taken when a server offers TLS, not imported: the start-up snapshot cannot hold it.
      // SNI takes a host name, never an address (RFC 6066).
      const secure = process.getBuiltinModule('node:tls').connect({ ...this.#tls, socket: raw, host, ...(isIP(host) === 0 ? { servername: host } : {}) });
      this.#securing = secure;
      secure.on('error', (err) => this.destroy(err));
      secure.once('secureConnect', () => this.#attach(secure));
    });
    return this;
  }

  #attach(inner: Socket): void {
    this.#inner = inner;
    inner.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('close', () => this.destroy());
    this.emit('connect');
  }

  setNoDelay(noDelay = true): this {
    this.#raw.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable = false, initialDelay = 0): this {
    this.#raw.setKeepAlive(enable, initialDelay);
    return this;
  }

  /** An idle pooled connection does not keep the process alive (pg's `allowExitOnIdle`). */
  ref(): this {
    this.#raw.ref();
    return this;
  }

  unref(): this {
    this.#raw.unref();
    return this;
  }

  override _read(): void {
    this.#inner?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const inner = this.#inner;
    // pg writes only after `connect`, but its end() may come while connecting.
    if (inner === undefined) this.once('connect', () => this._write(chunk, _encoding, callback));
    else inner.write(chunk, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (this.#inner === undefined) callback();
    else this.#inner.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#securing?.destroy();
    this.#inner?.destroy();
    this.#raw.destroy();
    callback(err);
  }
}
