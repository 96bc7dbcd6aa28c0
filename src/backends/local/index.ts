import { isAbsolute, posix, resolve } from 'node:path';
import type { BackendFactory, BackendNodes, ImpliedDependency, ImpliedDependencyNode, InfraNodeSpec, NodeConflict, NodeRelations, SharedResource, SpecIssue } from '../../infra/index.ts';
import { hasReferences } from '../../runtime/index.ts';
import type { NodeId } from '../../runtime/index.ts';
import { LOCAL_KINDS, LocalBackend } from './backend.ts';
import { localConfigSchema, rootOf } from './config.ts';
import type { LocalConfig } from './config.ts';
import { escapesRootFault } from './errors.ts';
import { linkLoop, linkTarget, throughLinks } from './links.ts';
import type { ManagedLink, ThroughLinks } from './links.ts';
import { lexicalEscape, normalPath } from './paths.ts';

/**
 * A node path that leaves the root, refused at compile time with the fault
 * every operation would raise. Only what the text shows: a path that holds a
 * `${nodes…}` reference is known once resolved, and where a symlink on the
 * way leads only the filesystem can say. So with a link's target: one that
 * leaves the root by its text alone is refused (an absolute target outside
 * the root; from a link in the root itself, a `..` that climbs out), one
 * that does so through the link's parent directories only warned of, as
 * a directory on the way may be a symlink deeper into the root.
 */
function checkLocalSpec(spec: InfraNodeSpec, config: LocalConfig, where?: { readonly cwd: string }): SpecIssue[] {
  if (!('path' in spec) || typeof spec.path !== 'string' || hasReferences(spec.path)) return [];
  const why = lexicalEscape(spec.path);
  if (why !== undefined) return [escapeIssue('path', spec.path, why)];
  if (spec.type !== 'local.symlink' || typeof spec.target !== 'string' || hasReferences(spec.target)) return [];
  const root = knownRoot(config, where);
  const target = spec.target;
  // An absolute target needs the root to be judged; under a root of `/`, nothing leaves it.
  if ((isAbsolute(target) && root === undefined) || root === '/') return [];
  const link = normalPath(spec.path);
  if (linkTarget(link, target, root) !== undefined) return [];
  if (isAbsolute(target)) return [escapeIssue('target', target, 'the symlink target is outside the root')];
  const from = posix.dirname(link);
  if (from === '.') return [escapeIssue('target', target, 'the symlink target climbs out of the root')];
  return [
    {
      path: ['target'],
      severity: 'warning',
      message: `symlink target ${target} climbs out of the backend root from ${from}: refused when applied, unless a directory on the way is a symlink deeper into the root`,
      code: 'path-escapes-root',
    },
  ];
}

/** The backend's root, absolute and in normal form, where it is known before running (relative: with the working directory). */
function knownRoot(config: LocalConfig, where: { readonly cwd: string } | undefined): string | undefined {
  return isAbsolute(config.root) ? posix.normalize(config.root) : where === undefined ? undefined : rootOf(config, where.cwd);
}

/** The issue at `field` that every operation would raise as a fault (`path-escapes-root`). */
function escapeIssue(field: 'path' | 'target', path: string, why: string): SpecIssue {
  const { message, code } = escapesRootFault(path, why);
  return { path: [field], message, code };
}

/** Files, directories and symlinks share one namespace: the path, in normal form. */
function localResourceKey(spec: InfraNodeSpec): { key: string; path: string[] } | undefined {
  if (!('path' in spec) || typeof spec.path !== 'string') return undefined;
  return { key: `path ${normalPath(spec.path)}`, path: ['path'] };
}

/**
 * The directories a node's path lies in (`a` and `a/b` of `a/b/c`), keyed as `localResourceKey` keys
 * them: a directory node removed from the goals while a node inside it stays is not deleted (its rmdir
 * would fail on every pass).
 */
function localNames(spec: InfraNodeSpec): string[] {
  if (!('path' in spec) || typeof spec.path !== 'string') return [];
  const parts = normalPath(spec.path).split('/');
  // Relative and inside the root: checkLocalSpec refuses the rest before this is asked.
  return parts.slice(0, -1).map((_, i) => `path ${parts.slice(0, i + 1).join('/')}`);
}

/** A node whose path is known before running, and where that path leads through the managed links (undefined: a loop of links). */
interface PathNode {
  readonly id: NodeId;
  readonly spec: InfraNodeSpec;
  readonly path: string;
  readonly through: ThroughLinks | undefined;
}

/**
 * The nodes of one instance whose path is known before running (no `${nodes…}` reference), each with
 * where its path leads through the links they manage; and those links, by path.
 */
function pathNodes(
  nodes: readonly ImpliedDependencyNode[],
  config: LocalConfig,
  where: { readonly cwd: string } | undefined,
): { readonly known: readonly PathNode[]; readonly links: ReadonlyMap<string, ManagedLink> } {
  const paths = nodes.flatMap(({ id, spec }) => ('path' in spec && typeof spec.path === 'string' && !hasReferences(spec.path) ? [{ id, spec, path: normalPath(spec.path) }] : []));
  const root = knownRoot(config, where);
  const links = new Map<string, ManagedLink>();
  for (const n of paths) {
    if (n.spec.type !== 'local.symlink' || hasReferences(n.spec.target) || links.has(n.path)) continue;
    const target = linkTarget(n.path, n.spec.target, root);
    if (target !== undefined) links.set(n.path, { id: n.id, target });
  }
  return { known: paths.map((n) => ({ ...n, through: throughLinks(n.path, links) })), links };
}

/** The implied dependencies, the shared resources and the conflicts of one instance's nodes, from one reading of their paths. */
function localRelations(nodes: readonly ImpliedDependencyNode[], config: LocalConfig, where?: { readonly cwd: string }): NodeRelations {
  const { known, links } = pathNodes(nodes, config, where);
  return { implied: impliedDependencies(known), shared: sharedResources(known), conflicts: [...linkLoops(links), ...filesInTheWay(known)] };
}

/**
 * A link node whose target leads round a loop of the links the goals manage (`a` to `b` and `b` to
 * `a`, or `l` to itself): symlink() makes it all the same, and then nothing can be reached through
 * it (ELOOP), its own observation included; one whose target leads into such a loop too.
 */
function linkLoops(links: ReadonlyMap<string, ManagedLink>): NodeConflict[] {
  const conflicts: NodeConflict[] = [];
  for (const [path, { id }] of links) {
    const loop = linkLoop(path, links);
    if (loop === undefined) continue;
    // Back to itself, or into a loop of others.
    const back = loop.indexOf(id, 1) !== -1;
    const round = [...new Set(back ? loop : loop.slice(1))];
    const named = `node${round.length > 1 ? 's' : ''} ${round.map((n) => `"${n}"`).join(', ')}`;
    conflicts.push({
      node: id,
      code: 'symlink-loop',
      message: `its target leads ${back ? 'round a loop of symlinks back to it' : 'into a loop of symlinks'} (${named}), which the kernel refuses to follow (ELOOP): nothing could be reached through it`,
      other: round.find((n) => n !== id),
      path: ['target'],
    });
  }
  return conflicts;
}

/**
 * A node whose path lies inside the path of a `local.file` node (`x/y` and `x`), through the managed
 * links: one of the two cannot be made, as `x` must be a directory for `x/y` to be there. A symlink
 * node's path on the way is no conflict: the path goes through the link (where it leads, when the
 * goals say so: `through`).
 */
function filesInTheWay(known: readonly PathNode[]): NodeConflict[] {
  return filesInTheWayOf(known.map((n) => ({ n, at: n.through?.path })));
}

/**
 * `filesInTheWay` across local backends whose roots are one inside the other (`out` and `./out/sub/`:
 * `sub/ff` a file through the one, `ff/inner` through the other), each path resolved under its root.
 */
function filesInTheWayAcross(instances: readonly BackendNodes<LocalConfig>[], where: { readonly cwd: string }): NodeConflict[] {
  const roots = instances.map(({ config }) => rootOf(config, where.cwd));
  // One root: its nodes are all relations' (filesInTheWay); read no paths again.
  if (new Set(roots).size < 2) return [];
  const placed = instances.map(({ backend, config, nodes }, i) => ({ id: backend, root: roots[i]!, known: pathNodes(nodes, config, where).known }));
  return filesInTheWayOf(placed.flatMap((backend) => backend.known.map((n) => ({ n, at: n.through === undefined ? undefined : posix.join(backend.root, n.through.path), backend }))));
}

/**
 * A node whose path (`at`: where it leads, relative to the one root, or, with `backend`, absolute) lies
 * inside that of a `local.file` node. With `backend`, only one of another root is counted (those of one
 * root are `filesInTheWay`'s: `relations` gets them together), and both backends are named.
 */
function filesInTheWayOf(paths: readonly { readonly n: PathNode; readonly at: string | undefined; readonly backend?: { readonly id: string; readonly root: string } }[]): NodeConflict[] {
  const files = new Map<string, (typeof paths)[number]>();
  for (const p of paths) if (p.n.spec.type === 'local.file' && p.at !== undefined && !files.has(p.at)) files.set(p.at, p);
  const conflicts: NodeConflict[] = [];
  if (files.size === 0) return conflicts;
  for (const { n, at, backend } of paths) {
    if (at === undefined) continue;
    for (let parent = posix.dirname(at); parent !== '.' && posix.dirname(parent) !== parent; parent = posix.dirname(parent)) {
      const file = files.get(parent);
      if (file === undefined) continue;
      if (backend === undefined || file.backend!.root !== backend.root) {
        const leads = n.through!.via.length === 0 ? 'lies' : 'leads';
        const as = file.n.path === parent ? '' : ` (path ${file.n.path})`;
        const [by, fileBy] = backend === undefined ? ['', ''] : [` through backend "${backend.id}"`, ` through backend "${file.backend!.id}"`];
        conflicts.push({
          node: n.id,
          code: 'path-conflict',
          message: `its path ${n.path}${by} ${leads} inside ${parent}, which node "${file.n.id}" manages as a file${fileBy}${as}: ${parent} would have to be a directory; one of them must go`,
          other: file.n.id,
          path: ['path'],
        });
      }
      break;
    }
  }
  return conflicts;
}

/**
 * A node whose path lies inside a directory node's path depends on the
 * nearest such directory (Puppet's autorequire): made after it, under its
 * mode and setgid group, and deleted before it, so that the directory is
 * not refused as not empty. The nearest is enough: that directory, inside
 * another, depends on it in turn. Paths compare in normal form, as the
 * resource key has them; a path with a `${nodes…}` reference is known only
 * at run time, and takes no part. A path that goes through a managed
 * symlink (`current/app.conf`) depends on the link node, made first (else
 * the file's parent directory would take the link's place), and lies in
 * the directory the link leads to; where a link the goals do not manage
 * leads, only the filesystem says.
 */
function impliedDependencies(known: readonly PathNode[]): ImpliedDependency[] {
  const directories = new Map<string, NodeId>();
  // Two nodes with one path are a compile error (`duplicate-resource`): the first is as good as any.
  for (const n of known) if (n.spec.type === 'local.directory' && !directories.has(n.path)) directories.set(n.path, n.id);
  const edges: ImpliedDependency[] = [];
  for (const n of known) {
    const through = n.through;
    if (through === undefined) continue; // a loop of links: refused at the links themselves (`linkLoops`)
    for (const on of new Set(through.via)) {
      if (on !== n.id) edges.push({ from: n.id, on, why: `its path ${n.path} goes through symlink node "${on}"`, path: ['path'] });
    }
    // Up the path, one level at a time, to the root (`.`, or `/` for a path the compiler refuses anyway).
    for (let parent = posix.dirname(through.path); ; parent = posix.dirname(parent)) {
      const on = directories.get(parent);
      if (on !== undefined && on !== n.id) {
        const inside = through.via.length === 0 ? `its path ${n.path} is inside ${parent}` : `its path ${n.path} leads inside ${parent}`;
        edges.push({ from: n.id, on, why: `${inside}, which directory node "${on}" manages`, path: ['path'] });
        break;
      }
      if (posix.dirname(parent) === parent) break;
    }
  }
  return edges;
}

/**
 * Two nodes that reach one path, one of them (or both) through a managed
 * symlink (`current/app.conf` and `releases/v2/app.conf`, `current` leading
 * to `releases/v2`): each would undo the other's work on every pass.
 */
function sharedResources(known: readonly PathNode[]): SharedResource[] {
  // No managed link followed: every node reaches its path by its one name.
  if (known.every((n) => n.through?.via.length === 0)) return [];
  const reached = new Map<string, { id: NodeId; path: string; via: readonly NodeId[] }>();
  const shared: SharedResource[] = [];
  const how = (path: string, via: readonly NodeId[], leads: string): string =>
    via.length === 0 ? `path ${path}` : `path ${path}, which is ${leads} through symlink node${new Set(via).size > 1 ? 's' : ''} ${[...new Set(via)].map((v) => `"${v}"`).join(', ')}`;
  for (const n of known) {
    const through = n.through;
    if (through === undefined) continue;
    const first = reached.get(through.path);
    if (first === undefined) reached.set(through.path, { id: n.id, path: n.path, via: through.via });
    // One path written twice is `resourceKey`'s error already.
    else if (first.path !== n.path) {
      shared.push({ node: n.id, what: how(n.path, through.via, through.path), other: first.id, otherWhat: how(first.path, first.via, through.path), path: ['path'] });
    }
  }
  return shared;
}

/** `type: local`: files, directories and symlinks confined to one root directory. */
export const localBackendFactory: BackendFactory<LocalConfig> = {
  type: 'local',
  kinds: LOCAL_KINDS,
  get configSchema() {
    return localConfigSchema();
  },
  checkSpec: checkLocalSpec,
  resourceKey: localResourceKey,
  namedResources: localNames,
  // What checkSpec and resourceKey read: they still run when another field of the spec has an error.
  specFields: ['path', 'target'],
  // What checkSpec, relations, conflictsAcross and placeOf read of the config: they still run when another field of it has an error.
  configFields: ['root'],
  relations: localRelations,
  conflictsAcross: filesInTheWayAcross,
  // As ensureFile/ensureDirectory/ensureSymlink and observe.ts make them.
  outputs: { 'local.file': ['path', 'sha256'], 'local.directory': ['path'], 'local.symlink': ['path', 'target'] },
  description: 'Files, directories and symlinks under a root directory, with atomic writes and file watching.',
  location: (config, { cwd }) => rootOf(config, cwd),
  // `rereadEvery` says how often files are read, not which.
  identity: (config, { cwd }) => ({ root: rootOf(config, cwd) }),
  placeOf: (spec, config, { cwd }) => ('path' in spec && typeof spec.path === 'string' ? resolve(rootOf(config, cwd), normalPath(spec.path)) : undefined),
  create: (config, ctx) => new LocalBackend(config, ctx),
};

export { LocalBackend, LOCAL_KINDS } from './backend.ts';
export { localConfigSchema } from './config.ts';
export type { LocalConfig } from './config.ts';
