import { builtinBackendFactories } from '../../src/backends/index.ts';
import { BackendRegistry, InfraSpecFactory } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec } from '../../src/infra/index.ts';
import { formatDiagnostic, GoalCompiler, parseGoalText } from '../../src/runtime/index.ts';
import type { CompileResult, Diagnostic, SourceDocument } from '../../src/runtime/index.ts';

/** A compile's result, with its diagnostics as the CLI prints them. */
export interface Compiled extends CompileResult<InfraDesiredNodeSpec> {
  /** Each diagnostic as `file:line:col: severity code: message`. */
  readonly lines: string[];
  readonly codes: string[];
  /** The factory the compile used: the declared backends and policy defaults. */
  readonly factory: InfraSpecFactory;
}

export interface CompileOptions {
  /** The backend implementations (default: the built-in ones). */
  readonly registry?: BackendRegistry;
}

const builtin = new BackendRegistry(builtinBackendFactories);

/**
 * Parses each goal file (path → text) in the order given, as the loader reads
 * a directory's files in sorted order, and compiles them all: what `validate`
 * does, without the files.
 */
export function compileFiles(files: Readonly<Record<string, string>>, options: CompileOptions = {}): Compiled {
  const { documents, diagnostics } = parseFiles(files);
  const factory = new InfraSpecFactory({ registry: options.registry ?? builtin });
  const result = new GoalCompiler({ factory }).compile(documents, diagnostics);
  return { ...result, lines: result.diagnostics.map(formatDiagnostic), codes: result.diagnostics.map((d) => d.code), factory };
}

/** Parses each goal file (path → text) in the order given: the documents and the parse diagnostics of all of them. */
export function parseFiles(files: Readonly<Record<string, string>>): { documents: SourceDocument[]; diagnostics: Diagnostic[] } {
  const documents: SourceDocument[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const [file, text] of Object.entries(files)) {
    const parsed = parseGoalText(file, text);
    documents.push(...parsed.documents);
    diagnostics.push(...parsed.diagnostics);
  }
  return { documents, diagnostics };
}

/** `compileFiles` of one goal file, `file` (default `goals/test.yaml`). */
export function compileText(text: string, options: CompileOptions & { readonly file?: string } = {}): Compiled {
  return compileFiles({ [options.file ?? 'goals/test.yaml']: text }, options);
}
