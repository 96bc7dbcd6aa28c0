import { ansibleBackendFactory } from './ansible/index.ts';
import { execBackendFactory } from './exec/index.ts';
import { localBackendFactory } from './local/index.ts';
import { memoryBackendFactory } from './memory/index.ts';
import { postgresBackendFactory } from './postgres/index.ts';
import { scriptBackendFactory } from './script/index.ts';

/**
 * Every backend implementation shipped with desiredstate, each a
 * `BackendFactory`. To add one: one import above, one entry below.
 */
export const builtinBackendFactories = [
  memoryBackendFactory,
  localBackendFactory,
  ansibleBackendFactory,
  execBackendFactory,
  postgresBackendFactory,
  scriptBackendFactory,
] as const;
