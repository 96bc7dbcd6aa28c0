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
  for (;;) {
    let followed = false;
    for (let slash = p.indexOf('/'); slash !== -1; slash = p.indexOf('/', slash + 1)) {
      const link = links.get(p.slice(0, slash));
      if (link === undefined) continue;
      if (via.length === MAX_HOPS) return undefined;
      const rest = p.slice(slash + 1);
      p = link.target === '.' ? rest : `${link.target}/${rest}`;
      via.push(link.id);
      followed = true;
      break;
    }
    if (!followed) return { path: p, via };
  }
}
