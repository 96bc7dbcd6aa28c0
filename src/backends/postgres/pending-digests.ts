import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { NodeId } from '../../runtime/index.ts';

/**
 * Password digests waiting for the next observation, in a file of the
 * backend's own under the state directory (0600).
 *
 * A role's password digest is tracked in the node's observation memo, which
 * the runtime keeps private (never in `status` or `/status`, unlike
 * outputs). But a create or update returns outputs only, and the runtime
 * records a null memo after one: the digest of a password just set (or
 * carried over a repair of another field) would be lost between the
 * operation and the next observation — in another process, for `apply` —
 * and, where the verifier is not readable, the password would be set again
 * at every pass. So a create or update writes the digest here, the next
 * observation reads it and returns it in the memo, and the observation after
 * that, seeing the memo hold it, removes it. An entry is the newest digest:
 * it wins over the memo (a crash can lose the record of a set, not this).
 *
 * Writes merge into the file as it is on disk (another process, such as a
 * `plan` beside the daemon, may have written meanwhile), and a removal only
 * removes the digest it confirmed. Failing to write costs at most one more
 * password set, never an operation: it is logged and ignored.
 */
export class PendingDigests {
  private readonly file: string;
  private readonly log: Logger;
  private entries: Promise<Map<NodeId, string>> | undefined;
  /** Changes made in memory, not yet written. */
  private readonly ops: ((m: Map<NodeId, string>) => void)[] = [];
  /** The last write, and the one not yet started (which takes every change made until it starts). */
  private writing: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;

  constructor(options: { stateDir: string; backendId: string; log: Logger }) {
    this.file = join(options.stateDir, 'postgres', `${encodeURIComponent(options.backendId)}.pending-password-digests.json`);
    this.log = options.log;
  }

  /** The pending digest of each node that has one (read from the file once per process). */
  async all(): Promise<ReadonlyMap<NodeId, string>> {
    this.entries ??= this.read();
    return this.entries;
  }

  /** Records the digest each node's role now has. */
  record(digests: ReadonlyMap<NodeId, string>): Promise<void> {
    if (digests.size === 0) return Promise.resolve();
    return this.change((m) => {
      for (const [id, d] of digests) m.set(id, d);
    });
  }

  /** Removes entries: each only if it still holds the digest given (`undefined`: whatever it holds). */
  forget(entries: ReadonlyMap<NodeId, string | undefined>): Promise<void> {
    if (entries.size === 0) return Promise.resolve();
    return this.change((m) => {
      for (const [id, d] of entries) if (d === undefined || m.get(id) === d) m.delete(id);
    });
  }

  private async change(apply: (m: Map<NodeId, string>) => void): Promise<void> {
    this.entries ??= this.read();
    const mine = await this.entries;
    const before = new Map(mine);
    apply(mine);
    if (sameEntries(before, mine)) return;
    this.ops.push(apply);
    // One write in flight; the changes that arrive meanwhile share the next one (1,000 creates one
    // by one are not 1,000 rewrites of a growing file).
    if (this.queued !== undefined) return this.queued;
    const run = this.writing.then(async () => {
      this.queued = undefined;
      await this.write(this.ops.splice(0));
    });
    this.queued = run;
    this.writing = run;
    return run;
  }

  private async write(ops: readonly ((m: Map<NodeId, string>) => void)[]): Promise<void> {
    try {
      const onDisk = await this.read();
      for (const op of ops) op(onDisk);
      if (onDisk.size === 0) {
        await unlink(this.file).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        });
        return;
      }
      await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
      const tmp = `${this.file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify({ v: 1, digests: Object.fromEntries(onDisk) }), { mode: 0o600 });
      await rename(tmp, this.file);
    } catch (err) {
      this.log.warn({ file: this.file, code: (err as NodeJS.ErrnoException).code }, 'cannot record pending password digests; a password may be set once more');
    }
  }

  private async read(): Promise<Map<NodeId, string>> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ file: this.file, code: (err as NodeJS.ErrnoException).code }, 'cannot read pending password digests');
      return new Map();
    }
    try {
      const doc = JSON.parse(text) as { v?: unknown; digests?: unknown };
      if (doc.v !== 1 || typeof doc.digests !== 'object' || doc.digests === null) throw new Error('not a v1 document');
      return new Map(Object.entries(doc.digests).filter((e): e is [string, string] => typeof e[1] === 'string'));
    } catch {
      this.log.warn({ file: this.file }, 'pending password digests unreadable; ignored');
      return new Map();
    }
  }
}

function sameEntries(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}
