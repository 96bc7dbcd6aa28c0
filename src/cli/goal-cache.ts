import { createHash } from 'node:crypto';
import { readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultLoadLimits, DesiredGraph, listGoalFiles } from '../runtime/index.ts';
import type { Dependency, Diagnostic, GoalInfo, NodeGate, NodeId, NodeSettings, SourceLocation } from '../runtime/index.ts';
import { desiredNodeSpec } from '../infra/index.ts';
import type { BackendDeclaration, InfraNodeSpec, PolicyDefault } from '../infra/index.ts';
import type { LoadedGoals } from './load.ts';

/**
 * The compiled goal set of the last `plan`/`apply`, kept in the state
 * directory, so that the next one-shot command over the same goals skips YAML
 * parsing and compilation (10,000 nodes: ~0.2 s of a 1 s steady `apply`).
 *
 * Compilation is a pure function of the goal files' paths and bytes, the
 * directory they are shown relative to, the policy mode and the program: the
 * key hashes all of them (the program as the launcher's digest of the
 * sources and the dependency lock), so any change to any of them is a miss
 * and a fresh compile. Only goal sets that compiled into a graph are kept;
 * the entry is checked again on the way in (format, key, a graph that
 * builds) and anything unexpected is a miss, never an error.
 */

const FORMAT = 1;
const FILE = 'compiled-goals.json';

interface StoredNode {
  readonly id: NodeId;
  readonly goal: string;
  readonly spec: { readonly spec: InfraNodeSpec; readonly backendId: string; readonly labels: Readonly<Record<string, string>>; readonly environment: string };
  readonly dependsOn: readonly Dependency[];
  readonly settings: NodeSettings;
  readonly source: SourceLocation;
}

interface Stored {
  readonly format: number;
  readonly key: string;
  readonly files: readonly string[];
  readonly goals: readonly GoalInfo[];
  readonly diagnostics: readonly Diagnostic[];
  readonly gates: readonly (readonly [NodeId, NodeGate])[];
  readonly backends: readonly BackendDeclaration[];
  readonly policyDefaults: readonly (readonly [string, readonly PolicyDefault[]])[];
  readonly nodes: readonly StoredNode[];
}

/**
 * The key of a goal directory as it is now, or undefined when it should not
 * be cached (more files or bigger files than the loader accepts: those fail
 * to load anyway, and are not read here).
 */
export async function goalSetKey(options: { goalsDir: string; cwd: string; mode: string; program: string }): Promise<string | undefined> {
  const files = await listGoalFiles(options.goalsDir);
  if (files.length === 0 || files.length > defaultLoadLimits.maxFiles) return undefined;
  const h = createHash('sha256').update(`desiredstate compiled goals ${FORMAT}\0${options.program}\0${options.mode}\0${options.cwd}\0${options.goalsDir}\0`);
  for (const file of files) {
    if (statSync(file).size > defaultLoadLimits.maxFileBytes) return undefined;
    h.update(`${file}\0`).update(await readFile(file)).update('\0');
  }
  return h.digest('hex');
}

/** The compiled goal set stored under `key`, or undefined (none, another key, unreadable, or a graph that does not build). */
export function readCompiledGoals(stateDir: string, key: string): LoadedGoals | undefined {
  let stored: Stored;
  try {
    stored = JSON.parse(readFileSync(join(stateDir, FILE), 'utf8')) as Stored;
  } catch {
    return undefined;
  }
  if (stored.format !== FORMAT || stored.key !== key || !Array.isArray(stored.nodes)) return undefined;
  try {
    const built = DesiredGraph.build(
      stored.nodes.map((n) => ({
        id: n.id,
        goal: n.goal,
        spec: desiredNodeSpec(n.spec.spec, n.spec.backendId, n.spec.labels, n.spec.environment),
        dependsOn: n.dependsOn,
        settings: n.settings,
        source: n.source,
      })),
    );
    if (!built.ok) return undefined;
    return {
      result: { graph: built.graph, goals: stored.goals, diagnostics: stored.diagnostics, gates: new Map(stored.gates) },
      factory: { backends: new Map(stored.backends.map((b) => [b.id, b])), policyDefaults: new Map(stored.policyDefaults) },
      files: stored.files,
    };
  } catch {
    // A damaged entry (a field missing where the graph needs it): compile instead.
    return undefined;
  }
}

/** Stores a compiled goal set under `key` (atomically; a graph-less result is not stored). Best effort: returns false when it could not. */
export function writeCompiledGoals(stateDir: string, key: string, loaded: LoadedGoals): boolean {
  const { graph, goals, diagnostics, gates } = loaded.result;
  if (graph === undefined) return false;
  const stored: Stored = {
    format: FORMAT,
    key,
    files: loaded.files,
    goals,
    diagnostics,
    gates: [...gates],
    backends: [...loaded.factory.backends.values()],
    policyDefaults: [...loaded.factory.policyDefaults],
    // Declaration order (the ids' order), so that the rebuilt graph orders its nodes the same way.
    nodes: [...graph.ids()].map((id) => graph.get(id)!).map((n) => ({
      id: n.id,
      goal: n.goal,
      spec: { spec: n.spec.spec, backendId: n.spec.backendId, labels: n.spec.labels, environment: n.spec.environment },
      dependsOn: n.dependsOn,
      settings: n.settings,
      source: n.source,
    })),
  };
  const path = join(stateDir, FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(stored), { mode: 0o600 });
    renameSync(tmp, path);
    return true;
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing was written.
    }
    return false;
  }
}
