import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type {
  BackendContext,
  BackendHealth,
  BackendNode,
  BackendUpdate,
  ChangeListener,
  InfraBackend,
  LocalDirectorySpec,
  LocalFileSpec,
  LocalSymlinkSpec,
} from '../../infra/index.ts';
import { FaultError, Pacer, assertNever, fault, flushMicrotasks, forEachLimit, holdsNodeReference, mapLimit, shownTemplate, sha256, toFault, writableOrCreatable } from '../../runtime/index.ts';
import type { Fault, FieldDiff, NodeId, Observation, ObservationMemo, OperationContext, Outputs, ProvisionResult } from '../../runtime/index.ts';
import type { AccountTable } from './accounts.ts';
import { lookupId } from './accounts.ts';
import {
  AccountFiles,
  Confiner,
  discardStaged,
  ensureParent,
  flushStaged,
  heldEntries,
  renameStaged,
  syncDirectory,
  inspectNode,
  inspectNodeSync,
  makeDirectory,
  removeDirectory,
  removeEntry,
  setAttributes,
  stageFile,
  writeFileAtomic,
  writeSymlinkAtomic,
} from './client.ts';
import type { AccountFilePaths, Accounts, FileWrite, NodePath, ReadPolicy, StagedWrite } from './client.ts';
import type { LocalConfig } from './config.ts';
import { OBSERVE_PARALLELISM, rereadEveryMs, rootOf } from './config.ts';
import { aboutTheRoot, aborted, directoryNotEmpty, fsFault, wrongKind, wrongKindToDelete } from './errors.ts';
import { FileClaims } from './file-claims.ts';
import type { SharedFile } from './file-claims.ts';
import { kindName, observeDirectory, observeFile, observeSymlink } from './observe.ts';
import type { ActualEntry, FileExpectation } from './observe.ts';
import { lexicalPath, MODE_BITS, modeDiffers, parseMode, rootRelative } from './paths.ts';
import { DirectoryWatch } from './watch.ts';
import type { WatchedPath } from './watch.ts';

/** The node types this backend provisions. */
export const LOCAL_KINDS = ['local.file', 'local.directory', 'local.symlink'] as const;

type LocalSpec = LocalFileSpec | LocalDirectorySpec | LocalSymlinkSpec;

function localSpec(node: BackendNode): LocalSpec {
  const spec = node.spec.spec;
  switch (spec.type) {
    case 'local.file':
    case 'local.directory':
    case 'local.symlink':
      return spec;
    default:
      throw new FaultError(fault('permanent', `the local backend cannot provision ${spec.type}`, { code: 'unsupported-type' }));
  }
}

/** The desired content of a file, encoded and hashed once per spec object (specs are frozen and live as long as their graph). */
interface DesiredContent {
  readonly bytes: Buffer;
  readonly sha256: string;
}
const desiredContents = new WeakMap<LocalFileSpec, DesiredContent>();

function desiredContent(spec: LocalFileSpec): DesiredContent {
  let d = desiredContents.get(spec);
  if (d === undefined) {
    const bytes = Buffer.from(spec.content, 'utf8');
    d = { bytes, sha256: sha256(bytes) };
    desiredContents.set(spec, d);
  }
  return d;
}

/**
 * Nodes in flight at once in `createMany`/`updateMany`. A file's temp file, rename and chmod are
 * synchronous calls, paced; what still goes through the thread pool (mkdir, a directory or a
 * symlink, a file too large to read at once) runs four calls at a time there, the rest queue.
 */
const WRITE_PARALLELISM = 16;

/**
 * Pinned directory fds a batch holds at most before it lets them go (observe: after each chunk of
 * OBSERVE_CHUNK nodes; writes: between waves, `ensureBatch`), well under the open-files limit a
 * service is commonly given (1,024).
 */
export const PINS_HELD = 128;

/** What the nodes of one `createMany`/`updateMany` share: confinement memo, the parents already made, the staged file writes. */
interface WriteBatch {
  readonly confiner: Confiner;
  readonly parents: Map<string, Promise<void>>;
  readonly staged: Map<NodeId, StagedWrite>;
}

/**
 * A failure as an operation's result and as an observation alike (`fsFault` passes a `FaultError` through),
 * of the backend rooted at `root` (`aboutTheRoot`).
 */
function failedResult(err: unknown, action: string, id: NodeId, root: string): { readonly status: 'failed'; readonly fault: Fault } {
  return { status: 'failed', fault: aboutTheRoot(toFault(fsFault(err, action, id)), root) };
}

/** The kind of what each node type makes. */
const MADE: Readonly<Record<LocalSpec['type'], 'file' | 'directory' | 'symlink'>> = { 'local.file': 'file', 'local.directory': 'directory', 'local.symlink': 'symlink' };

/**
 * A link node, its target checked as apply checks it (`Confiner.target`) unless the link is there as
 * wanted or about to be deleted: one that apply would not make (its target leads round a loop of
 * symlinks) is a failed observation, so that plan shows the fault apply would meet; one found so (made
 * by hand) reaches nothing, and is observed as it is.
 */
function observeLink(spec: LocalSymlinkSpec, at: NodePath, confiner: Confiner, actual: ActualEntry, beforeDelete: boolean): Observation {
  const asWanted = actual.kind === 'symlink' && actual.target === spec.target;
  confiner.target(at.real, spec.target, asWanted || beforeDelete ? 'observe' : 'make');
  return observeSymlink({ absPath: at.abs, target: spec.target }, actual);
}

/** A delete's refusal of something of another kind than the node made at its path (put there by hand since): never deleted. */
function misplaced(spec: LocalSpec, at: NodePath, actual: ActualEntry): FaultError | undefined {
  const made = MADE[spec.type];
  return actual.kind === 'missing' || actual.kind === made ? undefined : wrongKindToDelete(at.abs, kindName(actual), made);
}

/** Nodes observed with synchronous calls between two yields to the event loop (a few milliseconds of work). */
const OBSERVE_CHUNK = 128;

/**
 * Files, directories and symlinks under one root directory. Every path is
 * confined to the root (after `..` and symlinks); writes are atomic; a
 * thing of the wrong kind at a node's path is refused, never deleted.
 */
export class LocalBackend implements InfraBackend {
  readonly id: string;
  readonly type = 'local';
  /** The absolute root directory. */
  readonly root: string;

  private readonly log: Logger;
  /** `rereadEvery` in ms; undefined for `always`. */
  private readonly rereadEveryMs: number | undefined;
  private readonly accounts: AccountFiles;
  /** Each watch's stop. */
  private readonly watches = new Set<() => void>();
  /** Which file each node reaches, across observe calls (and other local backends' observations). */
  private readonly claims: FileClaims;

  /**
   * `config` as parsed by `localConfigSchema`; `rereadEvery` may be left out (tests, benchmarks).
   * `accountFiles`: where user and group names are looked up (/etc/passwd and /etc/group unless a test says).
   */
  constructor(config: Pick<LocalConfig, 'root'> & Partial<LocalConfig>, ctx: Pick<BackendContext, 'id' | 'cwd' | 'log'>, accountFiles?: AccountFilePaths) {
    this.id = ctx.id;
    this.accounts = new AccountFiles(accountFiles);
    this.claims = new FileClaims(ctx.id);
    this.root = rootOf(config, ctx.cwd);
    this.rereadEveryMs = rereadEveryMs(config);
    this.log = ctx.log;
  }

  /**
   * Reads every node; a node that cannot be read is a `failed` observation,
   * not a thrown batch. Small files are read with synchronous calls in
   * chunks, yielding to the event loop between chunks; files too large for
   * that are read with bounded parallelism.
   */
  async observe(nodes: readonly BackendNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>> {
    // Pinning: reads go where writes would (`Confiner.reading`), never through a directory swapped since.
    const confiner = new Confiner(this.root, { pin: true });
    try {
      return await this.observeWith(nodes, ctx, confiner);
    } finally {
      // Every read through its pinned directories has finished.
      confiner.close();
    }
  }

  private async observeWith(nodes: readonly BackendNode[], ctx: OperationContext, confiner: Confiner): Promise<ReadonlyMap<NodeId, Observation>> {
    const results = new Map<NodeId, Observation>();
    const failed = (node: BackendNode, err: unknown): Observation => failedResult(err, 'observe', node.id, this.root);
    // Owner and group names need the account tables: load them once, before the synchronous part.
    const accounts = nodes.some((n) => n.spec.spec.type === 'local.file' && (n.spec.spec.owner !== undefined || n.spec.spec.group !== undefined))
      ? await this.accounts.current()
      : undefined;
    // Taken before any lstat: what a memo records as the time of its reading.
    const now = Date.now();
    const memoOf = (id: NodeId): ObservationMemo | undefined => ctx.memoOf?.(id);
    const large: { node: BackendNode; at: NodePath }[] = [];
    // Nodes found reaching a file another node reaches, of this call or of another (`FileClaims`).
    const shared: SharedFile[] = [];
    for (let start = 0; start < nodes.length; start += OBSERVE_CHUNK) {
      if (start > 0) {
        // The chunk's reads are done (synchronous calls): its pinned directories are let go, so that a
        // pass over files in thousands of directories others may write in (users' homes, to a root
        // daemon) holds the fds of one chunk's, not all of them.
        confiner.close();
        await flushMicrotasks();
      }
      if (ctx.signal.aborted) break;
      for (const node of nodes.slice(start, start + OBSERVE_CHUNK)) {
        try {
          const spec = localSpec(node);
          const at = confiner.node(spec.path);
          // A node read before its delete (removed from the goals) claims no file: it shares none with the goals' nodes.
          const sharing = ctx.beforeDelete === true ? undefined : this.claims.reach(node.id, at, confiner);
          if (sharing !== undefined) shared.push(sharing);
          const obs = this.observeSync(spec, at, confiner, accounts, memoOf(node.id), now, ctx.beforeDelete === true);
          if (obs === undefined) large.push({ node, at });
          else results.set(node.id, obs);
        } catch (err) {
          results.set(node.id, failed(node, err));
        }
      }
    }
    // The large files, read through the thread pool, in slices of PINS_HELD: each slice's pins let go after it.
    for (let start = 0; start < large.length; start += PINS_HELD) {
      confiner.close();
      const slice = large.slice(start, start + PINS_HELD);
      const rest = await mapLimit(slice, OBSERVE_PARALLELISM, async ({ node, at }): Promise<Observation> => {
        try {
          return await this.observeOne(localSpec(node), at, confiner, memoOf(node.id), now, ctx.beforeDelete === true);
        } catch (err) {
          return failed(node, err);
        }
      });
      slice.forEach(({ node }, i) => results.set(node.id, rest[i] as Observation));
    }
    this.claims.settle(shared, results);
    if (ctx.beforeDelete === true) await this.foreseeDeletes(nodes, results, confiner);
    return results;
  }

  /**
   * Of nodes read before their delete (`OperationContext.beforeDelete`), each found there whose delete would
   * be refused by what is there now is answered as that delete's fault: plan shows it, and apply fails it
   * with no delete sent. Something of another kind at its path (`wrongKindToDelete`), as `delete` refuses it;
   * a directory that holds anything but what this call's other nodes' deletes remove first (they lie in it:
   * deleted before it) and temp files of writers gone, which rmdir would refuse in `delete`.
   */
  private async foreseeDeletes(nodes: readonly BackendNode[], results: Map<NodeId, Observation>, confiner: Confiner): Promise<void> {
    const found: { node: BackendNode; spec: LocalSpec; at: NodePath }[] = [];
    for (const node of nodes) {
      const status = results.get(node.id)?.status;
      if (status !== 'upToDate' && status !== 'drifted') continue;
      const spec = localSpec(node);
      found.push({ node, spec, at: confiner.node(spec.path) });
    }
    const leaving = new Set(found.map(({ at }) => at.real));
    await forEachLimit(found, OBSERVE_PARALLELISM, async ({ node, spec, at }) => {
      try {
        const actual = await inspectNode(confiner, at);
        let refusal = misplaced(spec, at, actual);
        if (refusal === undefined && actual.kind === 'directory') {
          const held = await heldEntries(at.real, confiner.directory(at.real), leaving);
          if (held.length > 0) refusal = directoryNotEmpty(at.real, held.sort());
        }
        if (refusal !== undefined) results.set(node.id, { status: 'failed', fault: refusal.fault });
      } catch (err) {
        results.set(node.id, failedResult(err, 'observe', node.id, this.root));
      }
    });
  }

  /** Makes the resource exist as desired; an existing one is corrected (already exists is success). */
  async create(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult> {
    return this.logged(node, ctx, 'created', await this.ensure(node, ctx));
  }

  /** Corrects whatever differs now (re-read, not trusted from `diffs`). */
  async update(node: BackendNode, _diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult> {
    return this.logged(node, ctx, 'updated', await this.ensure(node, ctx));
  }

  /** `create` for many nodes at once (a level of a converge): see `ensureMany`. */
  createMany(nodes: readonly BackendNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    return this.ensureMany(nodes, ctx, 'created');
  }

  /** `update` for many nodes at once (a repair pass): see `ensureMany`. */
  updateMany(items: readonly BackendUpdate[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    return this.ensureMany(
      items.map((i) => i.node),
      ctx,
      'updated',
    );
  }

  /** file and symlink: unlink; directory: rmdir when empty, else a permanent fault. Absent is success. */
  async delete(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult> {
    const spec = localSpec(node);
    const confiner = new Confiner(this.root, { pin: true });
    try {
      const at = confiner.node(spec.path);
      const actual = await inspectNode(confiner, at);
      if (actual.kind === 'missing') return { status: 'done', outputs: {} };
      const refusal = misplaced(spec, at, actual);
      if (refusal !== undefined) throw refusal;
      if (actual.kind === 'directory') await removeDirectory(confiner.io(at), () => confiner.directory(at.real), ctx.signal);
      else await removeEntry(confiner.io(at), ctx.signal);
      ctx.log.info({ node: node.id, path: at.abs }, 'local resource deleted');
      return { status: 'done', outputs: {} };
    } catch (err) {
      return failedResult(err, 'delete', node.id, this.root);
    } finally {
      confiner.close();
    }
  }

  /** Healthy when the root is writable, or does not exist yet and can be created. */
  async health(_ctx: { signal: AbortSignal; log: Logger }): Promise<BackendHealth> {
    const r = await writableOrCreatable(this.root);
    return r.ok ? { status: 'healthy' } : { status: 'unhealthy', message: r.message };
  }

  /**
   * Watches the parent directories of the nodes' paths, and those between them and the root; reports
   * changed node ids in batches (~50 ms).
   * The nodes are the goals' (`InfraBackend.watch`): what `FileClaims` compares each observation with.
   * A path with a `${nodes…}` reference leads where it resolves to, known when the node is observed
   * (`FileClaims` tells the watch); one with only `$${` escapes is the literal path it stands for.
   */
  watch(nodes: readonly BackendNode[], onChange: ChangeListener, log: Logger): () => void {
    const tracked: { id: NodeId; rel: string; template?: boolean }[] = [];
    const watched: WatchedPath[] = [];
    for (const node of nodes) {
      const spec = node.spec.spec;
      if (spec.type !== 'local.file' && spec.type !== 'local.directory' && spec.type !== 'local.symlink') continue;
      if (holdsNodeReference(spec.path)) {
        // Its text only, compared as written (`FileClaims.track`): not normalised, as `${nodes.p.outputs.dir}/../../f`
        // would be to a path out of the root, where it may well lead inside once resolved.
        tracked.push({ id: node.id, rel: spec.path, template: true });
        continue;
      }
      const path = shownTemplate(spec.path);
      try {
        const at = { id: node.id, abs: lexicalPath(this.root, path), rel: rootRelative(this.root, path) };
        tracked.push(at);
        watched.push(at);
      } catch {
        // A path that escapes the root is refused by every operation; there is nothing to watch.
      }
    }
    const w = new DirectoryWatch({ root: this.root, paths: watched, onChange, log });
    const untrack = this.claims.track(tracked, onChange, (id, rel) => w.follow(id, join(this.root, rel)));
    const stop = (): void => {
      w.stop();
      untrack();
      this.watches.delete(stop);
    };
    this.watches.add(stop);
    return stop;
  }

  /** Stops every watcher; other local backends no longer find its claims. */
  close(): Promise<void> {
    for (const stop of this.watches) stop();
    this.claims.leave();
    return Promise.resolve();
  }

  // ---- internals ----

  /**
   * One node with synchronous calls; `undefined` when its file is too large to read that way.
   * `beforeDelete`: read for its delete (`OperationContext.beforeDelete`), not to be made.
   */
  private observeSync(
    spec: LocalSpec,
    at: NodePath,
    confiner: Confiner,
    accounts: Accounts | undefined,
    memo: ObservationMemo | undefined,
    now: number,
    beforeDelete: boolean,
  ): Observation | undefined {
    switch (spec.type) {
      case 'local.file': {
        const expect = this.fileExpectationSync(spec, at, accounts);
        const actual = inspectNodeSync(confiner, at, this.readPolicy(spec, expect, accounts, memo, now));
        return actual === undefined ? undefined : observeFile(expect, actual);
      }
      case 'local.directory':
        return observeDirectory({ absPath: at.abs, mode: parseMode(spec.mode) }, inspectNodeSync(confiner, at)!);
      case 'local.symlink':
        return observeLink(spec, at, confiner, inspectNodeSync(confiner, at)!, beforeDelete);
      default:
        return assertNever(spec, 'spec');
    }
  }

  private async observeOne(spec: LocalSpec, at: NodePath, confiner: Confiner, memo: ObservationMemo | undefined, now: number, beforeDelete: boolean): Promise<Observation> {
    switch (spec.type) {
      case 'local.file': {
        // Read once for both the expectation and the read policy: each `current()` stats both account files.
        const accounts = spec.owner !== undefined || spec.group !== undefined ? await this.accounts.current() : undefined;
        const expect = this.fileExpectationSync(spec, at, accounts);
        return observeFile(expect, await inspectNode(confiner, at, this.readPolicy(spec, expect, accounts, memo, now)));
      }
      case 'local.directory':
        return observeDirectory({ absPath: at.abs, mode: parseMode(spec.mode) }, await inspectNode(confiner, at));
      case 'local.symlink':
        return observeLink(spec, at, confiner, await inspectNode(confiner, at), beforeDelete);
      default:
        return assertNever(spec, 'spec');
    }
  }

  private readPolicy(spec: LocalFileSpec, expect: FileExpectation, accounts: Accounts | undefined, memo: ObservationMemo | undefined, now: number): ReadPolicy {
    return { desiredSize: expect.size, desired: desiredContent(spec), accounts, memo, rereadEveryMs: this.rereadEveryMs, now };
  }

  /**
   * Each node as `create` would, a bounded number at a time, sharing one
   * confinement walk and one `mkdir -p` per parent directory. New file
   * content is staged in temp files and made durable for the whole batch at
   * once (one filesystem flush instead of an fsync per file), then each temp
   * file is renamed into place. Each node gets its own result; one node's
   * failure is that node's `failed` result.
   */
  private async ensureMany(nodes: readonly BackendNode[], ctx: OperationContext, done: 'created' | 'updated'): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    const batch: WriteBatch = { confiner: new Confiner(this.root, { pin: true }), parents: new Map(), staged: new Map() };
    try {
      return await this.ensureBatch(nodes, ctx, done, batch);
    } finally {
      // Every call through the batch's pinned directories has finished.
      batch.confiner.close();
    }
  }

  private async ensureBatch(nodes: readonly BackendNode[], ctx: OperationContext, done: 'created' | 'updated', batch: WriteBatch): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    // Its synchronous calls (temp files, renames, chmods) let the event loop turn every few milliseconds.
    const pacer = new Pacer();
    const results = new Map<NodeId, ProvisionResult>();
    // In waves: once PINS_HELD directories are pinned, the nodes not yet begun wait until what is
    // staged is in place and the fds are let go (a batch of files in thousands of directories others
    // may write in would otherwise hold one fd each until its end). A tree only root and the daemon's
    // user can change pins nothing: one wave.
    let todo = nodes;
    while (todo.length > 0) {
      const later: BackendNode[] = [];
      await forEachLimit(todo, WRITE_PARALLELISM, async (node) => {
        if (later.length > 0 || batch.confiner.pinCount >= PINS_HELD) {
          later.push(node);
          return;
        }
        await pacer.pace();
        if (ctx.signal.aborted) results.set(node.id, { status: 'failed', fault: fault('transient', 'operation aborted before it started') });
        else results.set(node.id, await this.ensure(node, ctx, batch));
      });
      await this.putInPlace(batch, ctx.signal, pacer, results);
      todo = later;
    }
    for (const node of nodes) this.logged(node, ctx, done, results.get(node.id)!);
    return results;
  }

  /** The batch's staged files made durable, renamed into place and their directories synced; then its pinned fds let go. */
  private async putInPlace(batch: WriteBatch, signal: AbortSignal, pacer: Pacer, results: Map<NodeId, ProvisionResult>): Promise<void> {
    const staged = [...batch.staged];
    batch.staged.clear();
    const unflushed = await flushStaged(
      staged.map(([, s]) => s),
      signal,
    );
    // Every rename first, then one fsync per directory for all of them.
    const renamed = new Set<string>();
    for (const [id, s] of staged) {
      await pacer.pace();
      try {
        const failure = unflushed.get(s) ?? (signal.aborted ? aborted('write') : undefined);
        if (failure !== undefined) throw failure;
        renameStaged(s);
        renamed.add(dirname(s.real));
      } catch (err) {
        discardStaged(s);
        results.set(id, failedResult(err, 'write', id, this.root));
      }
    }
    const unsynced = new Map<string, unknown>();
    await forEachLimit([...renamed], WRITE_PARALLELISM, async (dir) => {
      try {
        await syncDirectory(dir);
      } catch (err) {
        unsynced.set(dir, err);
      }
    });
    for (const [id, s] of staged) {
      const err = unsynced.get(dirname(s.real));
      if (err !== undefined && results.get(id)?.status === 'done') results.set(id, failedResult(fsFault(err, 'fsync', dirname(s.real)), 'fsync', id, this.root));
    }
    // Every call through the pinned directories has finished; the next wave pins again what it needs.
    batch.confiner.close();
  }

  /** The node made as desired; what cannot be done is its `failed` result. With a batch, new file content is staged in it. */
  private async ensure(node: BackendNode, ctx: OperationContext, batch?: WriteBatch): Promise<ProvisionResult> {
    // Alone, a confiner of its own, closed once its calls have finished; in a batch, the batch's.
    const confiner = batch?.confiner ?? new Confiner(this.root, { pin: true });
    try {
      const spec = localSpec(node);
      const parents = batch?.parents;
      const at = confiner.node(spec.path);
      // `mkdir -p` of a parent once per batch (the first caller's promise is shared).
      const parent = (): Promise<void> => {
        if (parents === undefined) return ensureParent(confiner, at.real, ctx.signal);
        const dir = at.dir;
        let p = parents.get(dir);
        if (p === undefined) parents.set(dir, (p = ensureParent(confiner, at.real, ctx.signal)));
        return p;
      };
      const write = async (file: FileWrite): Promise<void> => {
        if (batch === undefined) await writeFileAtomic(confiner.io(at), file, ctx.signal);
        else batch.staged.set(node.id, stageFile(confiner.io(at), file, ctx.signal));
      };
      switch (spec.type) {
        case 'local.file':
          return { status: 'done', outputs: await this.ensureFile(node.id, spec, at, confiner, ctx, parent, write, new Set(node.settings.ignoreFields)) };
        case 'local.directory':
          return { status: 'done', outputs: await this.ensureDirectory(spec, at, confiner, ctx.signal) };
        case 'local.symlink':
          confiner.target(at.real, spec.target, 'make');
          return { status: 'done', outputs: await this.ensureSymlink(spec, at, confiner, ctx.signal, parent) };
        default:
          return assertNever(spec, 'spec');
      }
    } catch (err) {
      return failedResult(err, 'provision', node.id, this.root);
    } finally {
      if (batch === undefined) confiner.close();
    }
  }

  private logged(node: BackendNode, ctx: OperationContext, done: 'created' | 'updated', result: ProvisionResult): ProvisionResult {
    if (result.status === 'done') ctx.log.info({ node: node.id, path: result.outputs.path }, done === 'created' ? 'local resource created' : 'local resource updated');
    return result;
  }

  /**
   * The file made as desired. On a file that exists, the fields the node's `ignoreFields` names are
   * left as they are found ("neither reported nor corrected"): an ignored `mode` is kept when new
   * content replaces the file, an ignored `content` is not written when the mode is corrected.
   */
  private async ensureFile(
    id: NodeId,
    spec: LocalFileSpec,
    at: NodePath,
    confiner: Confiner,
    ctx: OperationContext,
    parent: () => Promise<void>,
    write: (file: FileWrite) => Promise<void>,
    ignored: ReadonlySet<string>,
  ): Promise<Outputs> {
    const expect = await this.fileExpectation(spec, at);
    const policy = this.readPolicy(spec, expect, undefined, undefined, Date.now());
    const actual = inspectNodeSync(confiner, at, policy) ?? (await inspectNode(confiner, at, policy));
    if (actual.kind === 'missing') {
      await parent();
      await write({ content: spec.content, mode: expect.mode, uid: expect.owner?.id, gid: expect.group?.id, found: { missing: true } });
      return { path: at.abs, sha256: expect.sha256 };
    }
    if (actual.kind !== 'file') throw wrongKind(at.abs, kindName(actual), 'file');
    const uid = ignored.has('owner') ? undefined : expect.owner?.id;
    const gid = ignored.has('group') ? undefined : expect.group?.id;
    const mode = ignored.has('mode') ? actual.mode & MODE_BITS : expect.mode;
    const contentDiffers = actual.size !== expect.size || actual.sha256 !== expect.sha256;
    if (contentDiffers && !ignored.has('content')) {
      // A new file replaces this one: an owner or group the node does not manage is carried over.
      const keep = uid === undefined || gid === undefined ? { uid: actual.uid, gid: actual.gid } : undefined;
      const found = actual.ino === undefined || actual.ctimeMs === undefined ? undefined : { ino: actual.ino, size: actual.size, ctimeMs: actual.ctimeMs };
      if (actual.links !== undefined && actual.links > 1) {
        // Said at the time, not only in the README: whoever made the links may rely on them.
        ctx.log.warn(
          { node: id, path: at.abs, links: actual.links },
          `${at.abs} has ${actual.links} hard links: the new content is a new file at this path only, the other ${actual.links - 1} keep the old content`,
        );
      }
      await write({ content: spec.content, mode, uid, gid, keep, found });
      return { path: at.abs, sha256: expect.sha256 };
    }
    const ownerDiffers = (uid !== undefined && actual.uid !== uid) || (gid !== undefined && actual.gid !== gid);
    // A chown is always followed by the chmod, which puts back the setuid and setgid it clears.
    if (ownerDiffers || modeDiffers(actual.mode, mode)) setAttributes(confiner.io(at), { mode, ...(ownerDiffers ? { uid, gid } : {}) }, ctx.signal, 'file');
    return { path: at.abs, sha256: contentDiffers ? (actual.sha256 ?? null) : expect.sha256 };
  }

  private async ensureDirectory(spec: LocalDirectorySpec, at: NodePath, confiner: Confiner, signal: AbortSignal): Promise<Outputs> {
    const mode = parseMode(spec.mode);
    const actual = await inspectNode(confiner, at);
    if (actual.kind === 'missing') await makeDirectory(confiner, at, mode, signal);
    else if (actual.kind !== 'directory') throw wrongKind(at.abs, kindName(actual), 'directory');
    else if (modeDiffers(actual.mode, mode)) setAttributes(confiner.io(at), { mode }, signal, 'directory');
    return { path: at.abs };
  }

  private async ensureSymlink(spec: LocalSymlinkSpec, at: NodePath, confiner: Confiner, signal: AbortSignal, parent: () => Promise<void>): Promise<Outputs> {
    const actual = await inspectNode(confiner, at);
    if (actual.kind === 'missing') {
      await parent();
      await writeSymlinkAtomic(confiner.io(at), spec.target, signal);
    } else if (actual.kind !== 'symlink') {
      throw wrongKind(at.abs, kindName(actual), 'symlink');
    } else if (actual.target !== spec.target) {
      await writeSymlinkAtomic(confiner.io(at), spec.target, signal, { uid: actual.uid, gid: actual.gid });
    }
    return { path: at.abs, target: spec.target };
  }

  private async fileExpectation(spec: LocalFileSpec, at: NodePath): Promise<FileExpectation> {
    const needsAccounts = spec.owner !== undefined || spec.group !== undefined;
    return this.fileExpectationSync(spec, at, needsAccounts ? await this.accounts.current() : undefined);
  }

  private fileExpectationSync(spec: LocalFileSpec, at: NodePath, accounts: Accounts | undefined): FileExpectation {
    const desired = desiredContent(spec);
    const base = { absPath: at.abs, content: spec.content, size: desired.bytes.length, sha256: desired.sha256, mode: parseMode(spec.mode) };
    if (spec.owner === undefined && spec.group === undefined) return base;
    if (accounts === undefined) throw new Error('owner or group without account tables');
    const resolveId = (table: AccountTable, name: string, what: 'user' | 'group'): { name: string; id: number } => {
      const id = lookupId(table, name);
      if (id === undefined) {
        throw new FaultError(fault('permanent', `unknown ${what} "${name}" for ${at.abs}`, { code: `unknown-${what}`, hint: `create the ${what} or use a numeric id` }));
      }
      return { name, id };
    };
    return {
      ...base,
      owner: spec.owner === undefined ? undefined : resolveId(accounts.users, spec.owner, 'user'),
      group: spec.group === undefined ? undefined : resolveId(accounts.groups, spec.group, 'group'),
    };
  }
}
