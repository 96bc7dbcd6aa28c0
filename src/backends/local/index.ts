import { posix } from 'node:path';
import type { BackendFactory, InfraNodeSpec, SpecIssue } from '../../infra/index.ts';
import { hasReferences } from '../../runtime/index.ts';
import { LOCAL_KINDS, LocalBackend } from './backend.ts';
import { localConfigSchema } from './config.ts';
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

/** Files, directories and symlinks share one namespace: the path, in normal form (`./a//b/` is `a/b`). */
function localResourceKey(spec: InfraNodeSpec): { key: string; path: string[] } | undefined {
  if (!('path' in spec) || typeof spec.path !== 'string') return undefined;
  return { key: `path ${posix.normalize(spec.path).replace(/(.)\/+$/, '$1')}`, path: ['path'] };
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
  // As ensureFile/ensureDirectory/ensureSymlink and observe.ts make them.
  outputs: { 'local.file': ['path', 'sha256'], 'local.directory': ['path'], 'local.symlink': ['path', 'target'] },
  description: 'Files, directories and symlinks under a root directory, with atomic writes and file watching.',
  create: (config, ctx) => new LocalBackend(config, ctx),
};

export { LocalBackend, LOCAL_KINDS } from './backend.ts';
export { localConfigSchema } from './config.ts';
export type { LocalConfig } from './config.ts';
