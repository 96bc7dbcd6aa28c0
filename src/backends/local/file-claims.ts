import { relative } from 'node:path';
import type { ChangeListener } from '../../infra/index.ts';
import { fault } from '../../runtime/index.ts';
import type { NodeId, Observation } from '../../runtime/index.ts';
import type { Confiner, NodePath } from './client.ts';

/** A node last observed reaching its file through a symlink: its path (normal form, relative to the root: to resolve it again), and that file. */
interface Linked {
  readonly rel: string;
  readonly real: string;
}

/** A node of an observe call found reaching `file`, which `other` reaches too. */
export interface SharedFile {
  readonly node: NodeId;
  readonly other: NodeId;
  readonly file: string;
}

/**
 * Which file each node reaches, kept across observe calls. Two nodes whose paths lead to one file
 * (through a symlink the goals do not manage: `validate` refuses two equal paths) would overwrite
 * each other for ever, each pass "converged"; the daemon observes the nodes due, a few at a time, so
 * the two are seldom in one call. Cheap enough for a steady pass over 100k files: nothing for a node
 * whose path leads through no symlink in the root (`NodePath.linked`; a root given through one costs
 * what a plain root does) but, without a watch, one lookup of its own path, by the string its spec
 * holds (hashed once, not pass after pass), and, watched, one of its id when some path of the goals is
 * a template; more only for the few nodes whose path leads through a symlink.
 */
export class FileClaims {
  /**
   * Each node's own path (normal form, relative to the root): every node of the goals (`track`) whose
   * path is plain text, and each template node as last observed (`resolved`); without a watch, each observed.
   */
  private own = new Map<string, NodeId>();
  /** The nodes of the goals whose path is a template (`${nodes…}`, `$${`), each with it as written: `own` has it only as last resolved. */
  private templated = new Map<NodeId, string>();
  /** Where each template node's path last led (its key in `own`): a changed output leads it elsewhere, and the old file is let go. */
  private readonly resolved = new Map<NodeId, string>();
  /** The nodes whose path led through a symlink when last observed. */
  private readonly linked = new Map<NodeId, Linked>();
  /** The files of `linked`, each with the nodes that reached it. */
  private readonly byReal = new Map<string, NodeId[]>();
  /** Nodes whose last observation failed for a shared file: one of them found again by its other needs no telling. */
  private failing = new Set<NodeId>();
  /** Told of a node to observe now (the watch's listener); none without a watch (`apply`). */
  private listener: { readonly onChange: ChangeListener } | undefined;

  /**
   * The nodes of the goals now (a new graph's, given to `watch`): their own paths replace those
   * noted, and what was noted of a node removed, or whose path changed, goes (no false claim is left
   * behind). A path that is a `template` (as `hasReferences` tells) leads where it resolves to, known
   * when the node is observed: a node written as before keeps where it last led. `onChange` is told of
   * a node found sharing its file with one observed in another call. Returns what stops telling it.
   */
  track(paths: readonly { readonly id: NodeId; readonly rel: string; readonly template?: boolean }[], onChange: ChangeListener): () => void {
    const own = new Map<string, NodeId>();
    const templated = new Map<NodeId, string>();
    for (const { id, rel, template } of paths) {
      if (template === true) templated.set(id, rel);
      else if (!own.has(rel)) own.set(rel, id);
    }
    for (const [id, rel] of this.resolved) {
      const as = templated.get(id);
      if (as !== undefined && as === this.templated.get(id) && !own.has(rel)) own.set(rel, id);
      else this.resolved.delete(id);
    }
    this.own = own;
    this.templated = templated;
    for (const [id, l] of this.linked) if (own.get(l.rel) !== id) this.unlink(id, l);
    this.failing = new Set();
    const listener = { onChange };
    this.listener = listener;
    return () => {
      if (this.listener === listener) this.listener = undefined;
    };
  }

  /** How many nodes are noted reaching their file through a symlink: what is kept, and looked at, beyond each node's own path. */
  get linkedNodes(): number {
    return this.linked.size;
  }

  /**
   * Notes that node `id` reaches `at` now, and answers another node that reaches the same file, if
   * any: one whose own path it is, or one last observed reaching it through a symlink (resolved
   * again through `confiner`: a link removed or changed since is forgotten).
   */
  reach(id: NodeId, at: NodePath, confiner: Confiner): NodeId | undefined {
    // Watched (the daemon), every node of the goals is noted already (`track`) but one whose path is a
    // template, noted where it leads now; without a watch (`apply`), each as observed.
    if (this.listener === undefined) {
      if (!this.own.has(at.rel)) this.own.set(at.rel, id);
    } else if (this.templated.size > 0 && this.templated.has(id)) {
      this.resolve(id, at.rel);
    }
    // The steady pass over plain paths ends here: no symlink on anyone's way.
    if (!at.linked && this.linked.size === 0) return undefined;
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
      const ids = this.byReal.get(at.real);
      if (ids === undefined) this.byReal.set(at.real, [id]);
      else ids.push(id);
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
    for (const { node, other, file } of shared) {
      results.set(node, sharedFile(file, other));
      failed.add(node);
      if (results.has(other)) {
        results.set(other, sharedFile(file, node));
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

  /** Notes template node `id`'s path leading to `rel` now in `own`, in place of where it led before. */
  private resolve(id: NodeId, rel: string): void {
    const was = this.resolved.get(id);
    if (was === rel) return;
    if (was !== undefined && this.own.get(was) === id) this.own.delete(was);
    this.resolved.set(id, rel);
    if (!this.own.has(rel)) this.own.set(rel, id);
  }

  private unlink(id: NodeId, l: Linked): void {
    this.linked.delete(id);
    const ids = this.byReal.get(l.real)?.filter((x) => x !== id) ?? [];
    if (ids.length > 0) this.byReal.set(l.real, ids);
    else this.byReal.delete(l.real);
  }
}

/** `node` fails: `file` is managed by node `other` too. */
function sharedFile(file: string, other: NodeId): Observation {
  return {
    status: 'failed',
    fault: fault('permanent', `${file} is managed by node ${JSON.stringify(other)} too: their paths lead to one file through a symlink the goals do not manage`, {
      code: 'duplicate-resource',
      hint: 'one node per file: remove one of them from the goals, or manage the symlink so that validate sees the two paths are one',
    }),
  };
}
