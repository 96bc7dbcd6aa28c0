import { posix, resolve } from 'node:path';
import type { BackendFactory, ImpliedDependency, ImpliedDependencyNode, InfraNodeSpec, SpecIssue } from '../../infra/index.ts';
import { hasReferences } from '../../runtime/index.ts';
import type { NodeId } from '../../runtime/index.ts';
import { LOCAL_KINDS, LocalBackend } from './backend.ts';
import { localConfigSchema, rootOf } from './config.ts';
import type { LocalConfig } from './config.ts';
import { escapesRootFault } from './errors.ts';
import { lexicalEscape } from './paths.ts';

/**
 * A node path that leaves the root, refused at compile time with the fault
 * every operation would raise. Only what the text shows: a path that holds a
 * `${nodes…}` reference is known once resolved, and where a symlink leads
 * (a directory on the way, a link's target) only the filesystem can say.
 */
function checkLocalSpec(spec: InfraNodeSpec): SpecIssue[] {
  if (!('path' in spec) || typeof spec.path !== 'string' || hasReferences(spec.path)) return [];
  const why = lexicalEscape(spec.path);
  if (why === undefined) return [];
  const { message, code } = escapesRootFault(spec.path, why);
  return [{ path: ['path'], message, code }];
}

/** A node path in normal form (`./a//b/` is `a/b`): one resource, one text. */
function normalPath(path: string): string {
  return posix.normalize(path).replace(/(.)\/+$/, '$1');
}

/** Files, directories and symlinks share one namespace: the path, in normal form. */
function localResourceKey(spec: InfraNodeSpec): { key: string; path: string[] } | undefined {
  if (!('path' in spec) || typeof spec.path !== 'string') return undefined;
  return { key: `path ${normalPath(spec.path)}`, path: ['path'] };
}

/**
 * A node whose path lies inside a directory node's path depends on the
 * nearest such directory (Puppet's autorequire): made after it, under its
 * mode and setgid group, and deleted before it, so that the directory is
 * not refused as not empty. The nearest is enough: that directory, inside
 * another, depends on it in turn. Paths compare in normal form, as the
 * resource key has them; a path with a `${nodes…}` reference is known only
 * at run time, and takes no part. A symlink node is never a parent: what
 * lies "under" it is reached through the link, wherever that leads.
 */
function localImpliedDependencies(nodes: readonly ImpliedDependencyNode[]): ImpliedDependency[] {
  const known = nodes.flatMap(({ id, spec }) => ('path' in spec && typeof spec.path === 'string' && !hasReferences(spec.path) ? [{ id, type: spec.type, path: normalPath(spec.path) }] : []));
  const directories = new Map<string, NodeId>();
  // Two nodes with one path are a compile error (`duplicate-resource`): the first is as good as any.
  for (const n of known) if (n.type === 'local.directory' && !directories.has(n.path)) directories.set(n.path, n.id);
  const edges: ImpliedDependency[] = [];
  for (const n of known) {
    // Up the path, one level at a time, to the root (`.`, or `/` for a path the compiler refuses anyway).
    for (let parent = posix.dirname(n.path); ; parent = posix.dirname(parent)) {
      const on = directories.get(parent);
      if (on !== undefined && on !== n.id) {
        edges.push({ from: n.id, on, why: `its path ${n.path} is inside ${parent}, which directory node "${on}" manages`, path: ['path'] });
        break;
      }
      if (posix.dirname(parent) === parent) break;
    }
  }
  return edges;
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
  // What checkSpec and resourceKey read: they still run when another field of the spec has an error.
  specFields: ['path'],
  impliedDependencies: localImpliedDependencies,
  // As ensureFile/ensureDirectory/ensureSymlink and observe.ts make them.
  outputs: { 'local.file': ['path', 'sha256'], 'local.directory': ['path'], 'local.symlink': ['path', 'target'] },
  description: 'Files, directories and symlinks under a root directory, with atomic writes and file watching.',
  location: (config, { cwd }) => rootOf(config, cwd),
  placeOf: (spec, config, { cwd }) => ('path' in spec && typeof spec.path === 'string' ? resolve(rootOf(config, cwd), normalPath(spec.path)) : undefined),
  create: (config, ctx) => new LocalBackend(config, ctx),
};

export { LocalBackend, LOCAL_KINDS } from './backend.ts';
export { localConfigSchema } from './config.ts';
export type { LocalConfig } from './config.ts';
