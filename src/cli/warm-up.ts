/**
 * Run while the start-up snapshot is built (src/cli/snapshot.ts), after the
 * program has loaded: the path a one-shot `apply` takes against PostgreSQL,
 * on made-up nodes and a recorded server, so that the snapshot holds that
 * code compiled. V8 compiles a function on its first call, and keeps in a
 * snapshot only what was compiled while it was built: without this, a
 * one-shot repair of 1,000 roles spends ~30 ms compiling (our code, pg,
 * pino) before it can do anything. With it, that path starts compiled, and
 * pg is loaded in the snapshot rather than at the first connection.
 *
 * Nothing here reaches the machine: the logger writes nowhere, the server
 * is a stream that answers what the role path asks, and everything made is
 * closed before the snapshot is taken. What cannot run here (SQLite, a
 * native addon; a socket) stays compiled on first use, as before.
 *
 * pg's module-level state is then the build's: its `defaults` read USER
 * when it loads, which nothing here relies on (every connection names its
 * user, host and port), and its SCRAM code holds the WebCrypto object made
 * then, which the PostgreSQL CLI tests use through the snapshot launcher.
 */
import { Duplex } from 'node:stream';
import type { Writable } from 'node:stream';
import { PgClient, postgresBackendFactory, PostgresBackend } from '../backends/postgres/index.ts';
import { desiredNodeSpec, InfraNodeProvisioner, specSchemas } from '../infra/index.ts';
import type { InfraNode, InfraNodeSpec } from '../infra/index.ts';
import type { FieldDiff, OperationContext } from '../runtime/index.ts';
import { logger } from './context.ts';

/** Runs the warm-up; rejects if any of it fails (the build then makes no snapshot, and says why). */
export async function warmUp(): Promise<void> {
  const nowhere: Writable['write'] = () => true;
  const log = logger('debug', { write: nowhere });
  const config = postgresBackendFactory.configSchema.parse({ host: '127.0.0.1', port: 5432, user: 'postgres' });
  const client = new PgClient({ config, env: {}, cwd: '/', log, stream: () => new RecordedServer() });
  const backend = new PostgresBackend(config, { id: 'pg', cwd: '/', stateDir: '/', log, env: {} }, client);
  const provisioner = new InfraNodeProvisioner({ backends: new Map([['pg', backend]]) });
  const ctx: OperationContext = { signal: new AbortController().signal, log, outputsOf: () => undefined, memoOf: () => undefined };
  try {
    const nodes = [role('warm_a'), role('warm_b')];
    const observed = await provisioner.observe(nodes, ctx);
    const drifted = observed.get('warm_b');
    if (drifted?.status !== 'drifted') throw new Error(`warm-up: the recorded role was observed ${JSON.stringify(drifted)}, not drifted`);
    for (const d of drifted.diffs) log.info({ goal: 'warm-up', node: 'warm_b', backend: 'pg', diffs: [d], action: 'corrected' }, 'drift detected');
    const updates = [{ node: nodes[1]!, diffs: drifted.diffs as FieldDiff[] }];
    const results = await provisioner.updateMany(updates, ctx, 8);
    if (results.get('warm_b')?.status !== 'done') throw new Error(`warm-up: the update came back ${JSON.stringify(results.get('warm_b'))}`);
  } finally {
    await backend.close();
  }
}

function role(name: string): InfraNode {
  const spec = { type: 'postgres.role', ...specSchemas['postgres.role'].parse({ name, login: true, connectionLimit: 5 }) } as InfraNodeSpec;
  return {
    id: name,
    goal: 'warm-up',
    spec: desiredNodeSpec(spec, 'pg'),
    dependsOn: [],
    settings: { selfHeal: true, prune: false, deletionPolicy: 'Delete', ignoreFields: [] },
    source: { file: 'warm-up.yaml', line: 1, col: 1 },
  };
}

/** A PostgreSQL message: its type byte, its length, its body. */
function message(type: string, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(b.length + 4, 1);
  return Buffer.concat([head, b]);
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function cstring(s: string): Buffer {
  return Buffer.from(`${s}\0`);
}

/** A result: its columns (name, type oid), one row of text values, its command tag. */
function result(columns: readonly (readonly [string, number])[], row: readonly string[], tag: string): Buffer {
  const fields = columns.map(([name, oid]) => Buffer.concat([cstring(name), int32(0), int16(0), int32(oid), int16(-1), int32(-1), int16(0)]));
  const values = row.map((v) => Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)]));
  return Buffer.concat([message('T', int16(columns.length), ...fields), message('D', int16(row.length), ...values), message('C', cstring(tag))]);
}

const READY = message('Z', Buffer.from('I'));
const JSON_OID = 114;
const NAME_OID = 19;
const INT8_OID = 20;

/**
 * A server as the role path meets it: a login without a password, then the
 * roles query (extended protocol: `warm_a` as desired, `warm_b` with another
 * connection limit) and the update batch (simple protocol, answered with the
 * updated role's oid).
 */
class RecordedServer extends Duplex {
  #received = Buffer.alloc(0);
  #started = false;

  connect(): this {
    process.nextTick(() => this.emit('connect'));
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  override _read(): void {
    // Answers are pushed as the client's messages arrive.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.#received = Buffer.concat([this.#received, chunk]);
    if (!this.#started) {
      // The startup message (no type byte): logged in, no password asked.
      this.#started = true;
      this.#received = Buffer.alloc(0);
      this.push(Buffer.concat([message('R', int32(0)), message('S', cstring('server_version'), cstring('16.4')), message('K', int32(1), int32(2)), READY]));
      callback();
      return;
    }
    const answers: Buffer[] = [];
    while (this.#received.length >= 5 && this.#received.length >= this.#received.readInt32BE(1) + 1) {
      const type = String.fromCharCode(this.#received[0]!);
      this.#received = this.#received.subarray(this.#received.readInt32BE(1) + 1);
      if (type === 'P') answers.push(message('1'));
      else if (type === 'B') answers.push(message('2'));
      else if (type === 'E') {
        const roles = [
          [16384, 'warm_a', false, true, false, false, true, false, false, 5, null, [], null, []],
          [16385, 'warm_b', false, true, false, false, true, false, false, 7, null, [], null, []],
        ];
        answers.push(result([['roles', JSON_OID]], [JSON.stringify(roles)], 'SELECT 1'));
      } else if (type === 'S') answers.push(READY);
      else if (type === 'Q')
        answers.push(
          result(
            [
              ['name', NAME_OID],
              ['oid', INT8_OID],
            ],
            ['warm_b', '16385'],
            'SELECT 1',
          ),
          READY,
        );
      else if (type === 'X') this.push(null);
    }
    if (answers.length > 0) this.push(Buffer.concat(answers));
    callback();
  }
}
