import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach } from 'vitest';
import { LocalBackend } from '../../../src/backends/local/index.ts';
import { desiredNodeSpec } from '../../../src/infra/index.ts';
import type { InfraNode, LocalDirectorySpec, LocalFileSpec, LocalSymlinkSpec } from '../../../src/infra/index.ts';
import type { Observation, OperationContext } from '../../../src/runtime/index.ts';

export const log = pino({ level: 'silent' });

export function opCtx(signal: AbortSignal = new AbortController().signal): OperationContext {
  return { signal, log, outputsOf: () => undefined };
}

function nodeOf(id: string, spec: LocalFileSpec | LocalDirectorySpec | LocalSymlinkSpec): InfraNode {
  return {
    id,
    goal: 'test',
    spec: desiredNodeSpec(spec, 'local'),
    dependsOn: [],
    settings: { selfHeal: true, prune: false, deletionPolicy: 'Delete', ignoreFields: [] },
    source: { file: 'goals/test.yaml', line: 1, col: 1 },
  };
}

export function fileNode(id: string, path: string, content: string, extra: { mode?: string; owner?: string; group?: string } = {}): InfraNode {
  return nodeOf(id, { type: 'local.file', path, content, mode: extra.mode ?? '0644', owner: extra.owner, group: extra.group });
}

export function dirNode(id: string, path: string, mode = '0755'): InfraNode {
  return nodeOf(id, { type: 'local.directory', path, mode });
}

export function linkNode(id: string, path: string, target: string): InfraNode {
  return nodeOf(id, { type: 'local.symlink', path, target });
}

/** A temp directory with `root/` (not created: the backend creates it) and `outside/` next to it. */
export interface Sandbox {
  readonly base: string;
  readonly root: string;
  readonly outside: string;
  readonly backend: LocalBackend;
  cleanup(): Promise<void>;
}

/** `parent`: where the sandbox's directory is made (the system's temp directory unless said). */
export async function sandbox(parent = tmpdir()): Promise<Sandbox> {
  const base = await mkdtemp(join(parent, 'ds-local-'));
  const backend = new LocalBackend({ root: 'root' }, { id: 'local', cwd: base, log });
  return {
    base,
    root: join(base, 'root'),
    outside: join(base, 'outside'),
    backend,
    cleanup: async () => {
      await backend.close();
      await rm(base, { recursive: true, force: true });
    },
  };
}

/**
 * A fresh sandbox for every test of the file (or `describe`) that calls it,
 * cleaned up after each. The object returned reads the running test's
 * sandbox. Call it before the file's own hooks: vitest runs `afterEach`
 * hooks in reverse (`sequence.hooks: 'stack'`), so the sandbox goes last.
 */
export function useSandbox(): Sandbox {
  let current: Sandbox | undefined;
  beforeEach(async () => {
    current = await sandbox();
  });
  afterEach(async () => {
    const done = current;
    current = undefined;
    await done?.cleanup();
  });
  const now = (): Sandbox => {
    if (current === undefined) throw new Error('useSandbox: no sandbox outside a test');
    return current;
  };
  return {
    get base() {
      return now().base;
    },
    get root() {
      return now().root;
    },
    get outside() {
      return now().outside;
    },
    get backend() {
      return now().backend;
    },
    cleanup: () => now().cleanup(),
  };
}

/** The observation of one node (with `ctx`, a plain one by default); throws if the backend gave none. */
export async function observeOne(backend: LocalBackend, node: InfraNode, ctx: OperationContext = opCtx()): Promise<Observation> {
  const obs = (await backend.observe([node], ctx)).get(node.id);
  if (obs === undefined) throw new Error(`no observation for ${node.id}`);
  return obs;
}
