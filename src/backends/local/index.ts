import type { BackendFactory } from '../../infra/index.ts';
import { LOCAL_KINDS, LocalBackend } from './backend.ts';
import { localConfigSchema } from './config.ts';
import type { LocalConfig } from './config.ts';

/** `type: local`: files, directories and symlinks confined to one root directory. */
export const localBackendFactory: BackendFactory<LocalConfig> = {
  type: 'local',
  kinds: LOCAL_KINDS,
  configSchema: localConfigSchema,
  // As ensureFile/ensureDirectory/ensureSymlink and observe.ts make them.
  outputs: { 'local.file': ['path', 'sha256'], 'local.directory': ['path'], 'local.symlink': ['path', 'target'] },
  description: 'Files, directories and symlinks under a root directory, with atomic writes and file watching.',
  create: (config, ctx) => new LocalBackend(config, ctx),
};

export { LocalBackend, LOCAL_KINDS } from './backend.ts';
export { localConfigSchema } from './config.ts';
export type { LocalConfig } from './config.ts';
