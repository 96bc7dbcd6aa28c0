import { displayPath, GoalCompiler, loadGoalDirectory } from '../runtime/index.ts';
import type { CompileResult, Diagnostic } from '../runtime/index.ts';
import { InfraSpecFactory } from '../infra/index.ts';
import type { BackendRegistry, InfraDesiredNodeSpec, PolicyEngine } from '../infra/index.ts';

export interface LoadedGoals {
  readonly result: CompileResult<InfraDesiredNodeSpec>;
  /** What the commands use of the factory after compiling: the Backend documents and the policy defaults applied. */
  readonly factory: Pick<InfraSpecFactory, 'backends' | 'policyDefaults'>;
  readonly files: readonly string[];
}

/**
 * Reads and compiles a goal directory. Touches nothing else: no backend
 * connection, no secret. Paths in diagnostics are shown relative to `cwd`.
 */
export async function loadGoalSet(options: {
  goalsDir: string;
  cwd: string;
  registry: BackendRegistry;
  policy?: PolicyEngine | undefined;
}): Promise<LoadedGoals> {
  const { documents, diagnostics, files } = await loadGoalDirectory(options.goalsDir, { displayRoot: options.cwd });
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
