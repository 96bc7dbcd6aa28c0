import { displayPath, GoalCompiler, parseGoalSources, readGoalSources } from '../runtime/index.ts';
import type { CompileResult, Diagnostic, GoalSources } from '../runtime/index.ts';
import { InfraSpecFactory } from '../infra/index.ts';
import type { BackendRegistry, InfraDesiredNodeSpec, PolicyEngine } from '../infra/index.ts';

export interface LoadedGoals {
  readonly result: CompileResult<InfraDesiredNodeSpec>;
  /** What the commands use of the factory after compiling: the Backend documents and the policy defaults applied. */
  readonly factory: Pick<InfraSpecFactory, 'backends' | 'policyDefaults'>;
  readonly files: readonly string[];
}

/**
 * Reads and compiles a goal directory, or compiles its files as already read (`sources`, read with
 * `cwd` as the display root). Touches nothing else: no backend connection, no secret. Paths in
 * diagnostics are shown relative to `cwd`.
 */
export async function loadGoalSet(options: {
  goalsDir: string;
  cwd: string;
  registry: BackendRegistry;
  policy?: PolicyEngine | undefined;
  sources?: GoalSources | undefined;
}): Promise<LoadedGoals> {
  const sources = options.sources ?? (await readGoalSources(options.goalsDir, { displayRoot: options.cwd }));
  const { documents, diagnostics, files } = parseGoalSources(sources);
  const factory = new InfraSpecFactory({ registry: options.registry, policy: options.policy, cwd: options.cwd });
  const compiler = new GoalCompiler({ factory });
  const extra: Diagnostic[] = [];
  // Unless a directory could not be read: what it holds is not known.
  if (files.length === 0 && diagnostics.length === 0) {
    // The directory itself, as other diagnostics show paths: no line or column to point at.
    extra.push({ file: displayPath(options.goalsDir, options.cwd), line: 0, col: 0, severity: 'error', code: 'no-goals', message: 'the goal directory holds no *.yaml or *.yml files' });
  }
  const result = compiler.compile(documents, [...diagnostics, ...extra]);
  return { result, factory, files };
}
