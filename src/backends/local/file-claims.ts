import { relative, sep } from 'node:path';
import type { ChangeListener } from '../../infra/index.ts';
import { fault } from '../../runtime/index.ts';
import type { NodeId, Observation } from '../../runtime/index.ts';
import { Confiner } from './client.ts';
import type { NodePath } from './client.ts';
import { addId, removeId } from './id-lists.ts';

/** A node last observed reaching its file through a symlink: its path (normal form, relative to the root: to resolve it again), and that file. */
interface Linked {
  readonly rel: string;
  readonly real: string;
}

/**
 * A node of an observe call found reaching `file`, which `other` reaches too: by the same path, through
 * a symlink in the root, or through the root of another local backend (`elsewhere`: its claims).
 */
export type SharedFile = { readonly node: NodeId; readonly other: NodeId; readonly file: string } & (
  | { readonly how: 'same-path' | 'linked' }
  | { readonly how: 'other-root'; readonly elsewhere: FileClaims }
);

/**
 * The claims of every local backend of the process that observes now, by the real path of its root
 * (`FileClaims.enter`): two backends whose roots are one directory, or one inside the other, through
 * a symlink (`root` and `rootlink`, which `validate` compares as written) reach one file by two roots.
 */
const byRealRoot = new Map<string, Set<FileClaims>>();
/** How many claims are in `byRealRoot`: with one, no other root is looked at. */
let entered = 0;

/** What a watch is told (`track`): nodes to observe now, and where a template node's path leads now (normal form, relative to the root). */
interface ClaimsListener {
  readonly onChange: ChangeListener;
  readonly follow?: (id: NodeId, rel: string) => void;
}

/**
 * Which file each node reaches, kept across observe calls. Two nodes whose paths lead to one file
 * (through a symlink the goals do not manage, or, one a template, by resolving to the same path:
 * `validate` refuses two equal paths written out) would overwrite each other for ever, each pass
 * "converged"; the daemon observes the nodes due, a few at a time, so the two are seldom in one call.
 * Cheap enough for a steady pass over 100k files: nothing for a node whose path leads through no
 * symlink in the root (`NodePath.linked`; a root given through one costs what a plain root does) but,
 * without a watch, one lookup of its own path, by the string its spec holds (hashed once, not pass
 * after pass), and, watched, one of its id when some path of the goals is a template; more only for
 * the few nodes whose path leads through a symlink, or to a path another node's reaches.
 */
export class FileClaims {
  /**
   * Each node's own path (normal form, relative to the root): every node of the goals (`track`) whose
   * path is plain text, and each template node as last observed (`resolved`); without a watch, each observed.
   */
  private own = new Map<string, NodeId>();
  /** The other nodes noted at a path of `own` (a template node resolved to it, or, without a watch, one observed there): few, and each fails. */
  private more = new Map<string, NodeId[]>();
  /** The nodes of the goals whose path holds a `${nodes…}` reference, each with it as written: `own` (or `more`) has it only as last resolved. */
  private templated = new Map<NodeId, string>();
  /** Where each template node's path last led (its key in `own` or `more`): a changed output leads it elsewhere, and the old file is let go. */
  private readonly resolved = new Map<NodeId, string>();
  /** The nodes whose path led through a symlink when last observed. */
  private readonly linked = new Map<NodeId, Linked>();
  /** The files of `linked`, each with the nodes that reached it. */
  private readonly byReal = new Map<string, NodeId[]>();
  /** Nodes whose last observation failed for a shared file: one of them found again by its other needs no telling. */
  private failing = new Set<NodeId>();
  /** The watch's listener; none without a watch (`apply`). */
  private listener: ClaimsListener | undefined;
  /** The real path of the root, while in `byRealRoot` (from its first observation until `leave`). */
  private realRoot: string | undefined;

  /** The id of the backend whose claims these are, named to the node of another that reaches one of its files. */
  readonly backend: string;

  constructor(backend: string) {
    this.backend = backend;
  }

  /**
   * The nodes of the goals now (a new graph's, given to `watch`): their own paths replace those
   * noted, and what was noted of a node removed, or whose path changed, goes (no false claim is left
   * behind). A path that is a `template` (a `${nodes…}` reference in it) leads where it resolves to, known
   * when the node is observed: a node written as before keeps where it last led. `onChange` is told of
   * a node found sharing its file with one observed in another call; `follow` of where a template
   * node leads, each time that changes (and now, for those kept). Returns what stops telling them.
   */
  track(paths: readonly { readonly id: NodeId; readonly rel: string; readonly template?: boolean }[], onChange: ChangeListener, follow?: ClaimsListener['follow']): () => void {
    const own = new Map<string, NodeId>();
    const templated = new Map<NodeId, string>();
    for (const { id, rel, template } of paths) {
      if (template === true) templated.set(id, rel);
      else if (!own.has(rel)) own.set(rel, id);
    }
    const was = this.templated;
    this.own = own;
    this.more = new Map();
    this.templated = templated;
    for (const [id, rel] of this.resolved) {
      const as = templated.get(id);
      if (as !== undefined && as === was.get(id)) this.claim(id, rel);
      else this.resolved.delete(id);
    }
    for (const [id, l] of this.linked) if (own.get(l.rel) !== id) this.unlink(id, l);
    this.failing = new Set();
    const listener = { onChange, follow };
    this.listener = listener;
    if (follow !== undefined) for (const [id, rel] of this.resolved) follow(id, rel);
    return () => {
      if (this.listener !== listener) return;
      this.listener = undefined;
      // Its watch stopped: a backend replaced (new goals) claims nothing against the one that replaces it.
      this.leave();
    };
  }

  /**
   * Notes the root's real path, where other backends look for what these claims hold (`byRealRoot`),
   * in place of the one noted before (a root given through a symlink that has changed since).
   */
  private enter(realRoot: string): void {
    if (this.realRoot === realRoot) return;
    this.leave();
    this.realRoot = realRoot;
    let members = byRealRoot.get(realRoot);
    if (members === undefined) byRealRoot.set(realRoot, (members = new Set()));
    members.add(this);
    entered++;
  }

  /** Leaves `byRealRoot` (the backend closed, or its watch stopped): no other backend finds these claims from now on. */
  leave(): void {
    const realRoot = this.realRoot;
    if (realRoot === undefined) return;
    this.realRoot = undefined;
    const members = byRealRoot.get(realRoot);
    members?.delete(this);
    if (members?.size === 0) byRealRoot.delete(realRoot);
    entered--;
  }

  /** How many nodes are noted reaching their file through a symlink: what is kept, and looked at, beyond each node's own path. */
  get linkedNodes(): number {
    return this.linked.size;
  }

  /**
   * Notes that node `id` reaches `at` now, and answers how another node reaches the same file, if
   * any: one whose own path it is too, or whose own path it leads to, or one last observed reaching
   * it through a symlink (resolved again through `confiner`: a link removed or changed since is forgotten).
   */
  reach(id: NodeId, at: NodePath, confiner: Confiner): SharedFile | undefined {
    this.enter(confiner.realRoot().real);
    // Watched (the daemon), every node of the goals is noted already (`track`) but one whose path is a
    // template, noted where it leads now; without a watch (`apply`), each as observed.
    let same: NodeId | undefined;
    if (this.listener === undefined) same = this.claim(id, at.rel);
    else if (this.templated.size > 0 && this.templated.has(id)) same = this.resolve(id, at.rel);
    else if (this.more.size > 0) same = this.sharer(at.rel, id);
    // The steady pass over plain paths ends here: no symlink on anyone's way.
    const other = !at.linked && this.linked.size === 0 ? undefined : this.linkedOther(id, at, confiner);
    if (same !== undefined) return { node: id, other: same, file: at.real, how: 'same-path' };
    if (other !== undefined) return { node: id, other, file: at.real, how: 'linked' };
    // Another local backend of the process (the default one beside a declared one, say) is the exception.
    return entered > 1 ? this.otherRoot(id, at.real) : undefined;
  }

  /**
   * A node of another backend whose root is `file`'s directory or one above it (real paths), found
   * there: by its own path (a real path has no symlink on its way: the node whose path it is, under
   * that root, reaches it), or last observed reaching it through a symlink.
   */
  private otherRoot(id: NodeId, file: string): SharedFile | undefined {
    // The few roots there are, each compared with the file's path, rather than every directory above the file
    // looked up for every node observed; nearest first, as each directory up from the file would come.
    let above: string[] | undefined;
    for (const root of byRealRoot.keys()) if (isUnder(file, root)) (above ??= []).push(root);
    if (above === undefined) return undefined;
    if (above.length > 1) above.sort((a, b) => b.length - a.length);
    for (const dir of above) {
      for (const elsewhere of byRealRoot.get(dir)!) {
        if (elsewhere === this) continue;
        const other = elsewhere.sharer(relative(dir, file), id) ?? (elsewhere.byReal.has(file) ? elsewhere.linkedTo(file, id, new Confiner(dir)) : undefined);
        if (other !== undefined) return { node: id, other, file, how: 'other-root', elsewhere };
      }
    }
    return undefined;
  }

  /** A node other than `id` reaching `at`'s file by another path, through a symlink. */
  private linkedOther(id: NodeId, at: NodePath, confiner: Confiner): NodeId | undefined {
    const was = this.linked.get(id);
    if (!at.linked) {
      if (was !== undefined) this.unlink(id, was);
      return this.linkedTo(at.real, id, confiner);
    }
    // A real path has no symlink on its way: a node whose own path it is (under the real root) reaches it.
    const owner = this.own.get(relative(confiner.realRoot().real, at.real));
    const other = owner !== undefined && owner !== id ? owner : this.linkedTo(at.real, id, confiner);
    if (was?.real !== at.real) {
      if (was !== undefined) this.unlink(id, was);
      this.linked.set(id, { rel: at.rel, real: at.real });
      addId(this.byReal, at.real, id);
    }
    return other;
  }

  /**
   * Fails both nodes of each shared file, each naming the other: in `results` (one observe call's)
   * when the other is of the call too; when it is not, and did not fail so when last observed, the
   * watch tells it to look now rather than at its next interval (observed, it finds this node).
   */
  settle(shared: readonly SharedFile[], results: Map<NodeId, Observation>): void {
    const failed = new Set<NodeId>();
    const told: NodeId[] = [];
    for (const s of shared) {
      const { node, other } = s;
      results.set(node, sharedFile(s));
      failed.add(node);
      if (s.how === 'other-root') {
        // Of another backend: never of this call; its watch is told, as this one's is of its own.
        if (!s.elsewhere.failing.has(other)) s.elsewhere.listener?.onChange([other]);
      } else if (results.has(other)) {
        results.set(other, sharedFile({ ...s, node: other, other: node }));
        failed.add(other);
      } else if (!this.failing.has(other)) {
        told.push(other);
      }
    }
    for (const id of this.failing) if (results.has(id) && !failed.has(id)) this.failing.delete(id);
    for (const id of failed) this.failing.add(id);
    if (told.length > 0) this.listener?.onChange(told);
  }

  /** A node other than `id` last observed reaching `file` through a symlink, and reaching it still. */
  private linkedTo(file: string, id: NodeId, confiner: Confiner): NodeId | undefined {
    const ids = this.byReal.get(file);
    if (ids === undefined) return undefined;
    // `unlink` replaces the list, never changes it: safe to go on through it.
    for (const other of ids) {
      if (other === id) continue;
      const l = this.linked.get(other)!;
      let real: string | undefined;
      try {
        real = confiner.node(l.rel).real;
      } catch {
        // Its path is refused now: it reaches no file, and its own observation says why.
      }
      if (real === file) return other;
      this.unlink(other, l);
    }
    return undefined;
  }

  /**
   * Notes template node `id`'s path leading to `rel` now, in place of where it led before (the watch
   * follows it there); answers another node noted there.
   */
  private resolve(id: NodeId, rel: string): NodeId | undefined {
    const was = this.resolved.get(id);
    if (was === rel) return this.sharer(rel, id);
    if (was !== undefined) this.release(id, was);
    this.resolved.set(id, rel);
    this.listener?.follow?.(id, rel);
    return this.claim(id, rel);
  }

  /** Notes node `id` at path `rel` (in `own`, or in `more` when another has it); answers another node noted there. */
  private claim(id: NodeId, rel: string): NodeId | undefined {
    const owner = this.own.get(rel);
    if (owner === undefined) {
      this.own.set(rel, id);
      return undefined;
    }
    if (owner === id) return this.more.size > 0 ? this.sharer(rel, id) : undefined;
    addId(this.more, rel, id);
    return owner;
  }

  /** Lets go of node `id` at path `rel`: another noted there, if any, has it in `own` now. */
  private release(id: NodeId, rel: string): void {
    const [next] = removeId(this.more, rel, id);
    if (this.own.get(rel) !== id) return;
    if (next === undefined) {
      this.own.delete(rel);
    } else {
      this.own.set(rel, next);
      removeId(this.more, rel, next);
    }
  }

  /** A node other than `id` noted at path `rel`. */
  private sharer(rel: string, id: NodeId): NodeId | undefined {
    const owner = this.own.get(rel);
    if (owner !== undefined && owner !== id) return owner;
    return this.more.get(rel)?.find((x) => x !== id);
  }

  private unlink(id: NodeId, l: Linked): void {
    this.linked.delete(id);
    removeId(this.byReal, l.real, id);
  }
}

/** Why two nodes reach one file, and what to do, by how they reach it (`SharedFile.how`). */
const SHARED_HOW: Readonly<Record<SharedFile['how'], { readonly why: string; readonly hint: string }>> = {
  'same-path': {
    why: 'their paths resolve to the same path (one written with a ${nodes…} reference, known only when it runs: validate cannot compare it)',
    hint: 'one node per file: remove one of them from the goals, or change a path (or the output it reads) so that they lead to different files',
  },
  linked: {
    why: 'their paths lead to one file through a symlink the goals do not manage',
    hint: 'one node per file: remove one of them from the goals, or manage the symlink so that validate sees the two paths are one',
  },
  'other-root': {
    why: 'the roots of their backends lead to one directory, or one inside the other, through a symlink (validate compares roots as written)',
    hint: 'one node per file: remove one of them from the goals, or root the two backends in directories apart (or declare one backend for both)',
  },
};

/** `s.node` fails: its file is managed by `s.other` too, named with its backend when another's. */
function sharedFile(s: SharedFile): Observation {
  const { why, hint } = SHARED_HOW[s.how];
  const other = s.how === 'other-root' ? `node ${JSON.stringify(s.other)} of backend ${JSON.stringify(s.elsewhere.backend)}` : `node ${JSON.stringify(s.other)}`;
  return { status: 'failed', fault: fault('permanent', `${s.file} is managed by ${other} too: ${why}`, { code: 'duplicate-resource', hint }) };
}

/** Whether `file` lies under directory `root` (both real paths: no `.`, `..` or doubled separator). */
function isUnder(file: string, root: string): boolean {
  return file.startsWith(root) && (root.endsWith(sep) ? file.length > root.length : file[root.length] === sep);
}
