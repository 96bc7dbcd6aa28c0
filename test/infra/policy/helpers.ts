import { stringify } from 'yaml';
import { z } from 'zod';
import { BackendRegistry, InfraSpecFactory, INFRA_NODE_TYPES } from '../../../src/infra/index.ts';
import type { BackendFactory } from '../../../src/infra/index.ts';
import { CelPolicyEngine } from '../../../src/infra/policy/index.ts';
import type { CelPolicyEngineOptions } from '../../../src/infra/policy/index.ts';
import { GoalCompiler } from '../../../src/runtime/index.ts';
import type { CompileResult, Diagnostic, SourceDocument } from '../../../src/runtime/index.ts';
import type { InfraDesiredNodeSpec } from '../../../src/infra/index.ts';
import { parseFiles } from '../../support/compile.ts';

/**
 * A backend that accepts every type and is never instantiated: policy tests
 * only compile (the real backends are built elsewhere).
 */
export const anyTypeBackend: BackendFactory<Record<string, unknown>> = {
  type: 'local',
  kinds: INFRA_NODE_TYPES,
  configSchema: z.object({}).loose(),
  create() {
    throw new Error('policy tests never instantiate a backend');
  },
  description: 'test backend: every type, no I/O',
};

export interface Compiled {
  readonly result: CompileResult<InfraDesiredNodeSpec>;
  readonly engine: CelPolicyEngine;
  readonly factory: InfraSpecFactory;
  /** Diagnostics as `file:line:col severity code`. */
  readonly brief: string[];
}

/** Compiles goal-file texts end to end: loader, GoalCompiler, InfraSpecFactory, the engine. */
export function compileTexts(files: Readonly<Record<string, string>>, options: CelPolicyEngineOptions = {}): Compiled {
  const { documents, diagnostics } = parseFiles(files);
  return compileDocuments(documents, diagnostics, options);
}

export function compileDocuments(documents: readonly SourceDocument[], diagnostics: readonly Diagnostic[], options: CelPolicyEngineOptions = {}): Compiled {
  const engine = new CelPolicyEngine(options);
  const registry = new BackendRegistry().register(anyTypeBackend);
  const factory = new InfraSpecFactory({ registry, policy: engine });
  const result = new GoalCompiler({ factory }).compile(documents, diagnostics);
  return { result, engine, factory, brief: result.diagnostics.map((d) => `${d.file}:${d.line}:${d.col} ${d.severity} ${d.code}`) };
}

/** A Policy document's YAML text. */
export function policyYaml(spec: Record<string, unknown>, name = 'org'): string {
  return stringify({ apiVersion: 'desiredstate/v1', kind: 'Policy', metadata: { name }, spec });
}

export interface NodeInput {
  readonly id: string;
  readonly type: string;
  readonly spec: Record<string, unknown>;
  readonly labels?: Record<string, string>;
  readonly deletionPolicy?: 'Orphan' | 'Delete';
}

/** A Goal document's YAML text. */
export function goalYaml(options: { name?: string; environment: string; labels?: Record<string, string>; nodes: readonly NodeInput[] }): string {
  return stringify({
    apiVersion: 'desiredstate/v1',
    kind: 'Goal',
    metadata: { name: options.name ?? `app-${options.environment}`, environment: options.environment, labels: options.labels ?? {} },
    spec: { nodes: options.nodes },
  });
}
