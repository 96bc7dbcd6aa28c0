import { isAbsolute, posix } from 'node:path';
import type { NodeId } from '../../runtime/index.ts';
import { normalPath } from './paths.ts';

/**
 * What the goals say of the symlinks they manage, before anything runs: a
 * node whose path goes through a managed link (`current/app.conf`, with
 * `current` a link to `releases/v2`) reaches what lies under the link's
 * target. Only the text is read, as the kernel would follow it; links the
 * goals do not manage, and targets known only at run time, are the
 * filesystem's to say (the backend confines every operation there).
 */

/** A managed link: the node, and where it leads (root-relative, normal form; `.` for the root). */
export interface ManagedLink {
  readonly id: NodeId;
  readonly target: string;
}

/** Where a path really leads, and the managed links it passed on the way (in order). */
export interface ThroughLinks {
  readonly path: string;
  readonly via: readonly NodeId[];
}

/** As the kernel gives up (ELOOP). */
const MAX_HOPS = 40;

/**
 * Where a link node at `linkPath` (root-relative, normal form) leads, root-relative in normal form,
 * or undefined when its target leaves the root (refused when it runs) or the root is not known here
 * for an absolute target.
 */
export function linkTarget(linkPath: string, target: string, root: string | undefined): string | undefined {
  let rel: string;
  if (isAbsolute(target)) {
    if (root === undefined) return undefined;
    rel = posix.relative(root, posix.normalize(target));
    if (isAbsolute(rel)) return undefined;
  } else {
    rel = posix.join(posix.dirname(linkPath), target);
  }
  rel = normalPath(rel);
  return rel === '..' || rel.startsWith('../') ? undefined : rel;
}

/**
 * Where `path` (root-relative, normal form) leads once the managed links
 * among its parent directories are followed, left to right as the kernel
 * does; its last component is not followed (a link node manages the link
 * itself). Undefined for a loop of links.
 */
export function throughLinks(path: string, links: ReadonlyMap<string, ManagedLink>): ThroughLinks | undefined {
  if (links.size === 0) return { path, via: [] };
  const via: NodeId[] = [];
  let p = path;
  for (let next = followFirst(p, links, false); next !== undefined; next = followFirst(p, links, false)) {
    if (via.length === MAX_HOPS) return undefined;
    via.push(next.id);
    p = next.path;
  }
  return { path: p, via };
}

/**
 * The managed links the link node at `linkPath` leads round without end, as the kernel would follow
 * them from it, and refuse (ELOOP, after as many as it follows): its own id first, then each link met
 * on the way (`a` to `b`, `b` to `a`: a, b, a, b …; `l` to itself: l, l …). Undefined when its way
 * ends: at a path no managed link stands on, or at one whose target is not known here.
 */
export function linkLoop(linkPath: string, links: ReadonlyMap<string, ManagedLink>): readonly NodeId[] | undefined {
  const link = links.get(linkPath);
  if (link === undefined) return undefined;
  const met: NodeId[] = [link.id];
  // A link's target is followed to its end, its last component included.
  for (let p = link.target; met.length <= MAX_HOPS; ) {
    const next = followFirst(p, links, true);
    if (next === undefined) return undefined;
    met.push(next.id);
    p = next.path;
  }
  return met;
}

/**
 * The first managed link on `p`'s way, left to right (its last component only when `last`), and
 * where `p` leads through it; undefined when there is none.
 */
function followFirst(p: string, links: ReadonlyMap<string, ManagedLink>, last: boolean): { readonly id: NodeId; readonly path: string } | undefined {
  for (let slash = p.indexOf('/'); ; slash = p.indexOf('/', slash + 1)) {
    if (slash === -1 && !last) return undefined;
    const end = slash === -1 ? p.length : slash;
    const link = links.get(p.slice(0, end));
    if (link !== undefined) {
      const rest = p.slice(end + 1);
      return { id: link.id, path: rest === '' ? link.target : link.target === '.' ? rest : `${link.target}/${rest}` };
    }
    if (slash === -1) return undefined;
  }
}
