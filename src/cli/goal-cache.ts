import { createHash } from 'node:crypto';
import { linkSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DesiredGraph, removeQuietly, replaceFile } from '../runtime/index.ts';
import type { Diagnostic, GoalInfo, GoalSources, NodeGate, NodeId, NodeSettings } from '../runtime/index.ts';
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

const FORMAT = 10;
const FILE = 'compiled-goals.json';
/**
 * The entry of the goals last applied (by `apply` or `run`): a second name of FILE's file as it was
 * then (a hard link), so that a `plan` of other goals (a branch's work tree against the real state),
 * which replaces FILE, does not take the daemon's fallback away; written out where FILE does not hold
 * them (the cache off, its write failed, a policy rule at its time limit). Taken only while the state
 * records its key as the goals last applied (`GOALS_APPLIED_META` in context.ts).
 */
const LAST_GOOD = 'last-good-goals.json';
/**
 * The goals' commit when they were last applied (`goalsCommit`: HEAD, or HEAD-dirty), with the key of the
 * entry it is for: `{key, commit}`. Written after LAST_GOOD is linked; one whose key is not that entry's
 * (a crash between the two) says nothing.
 */
const LAST_GOOD_COMMIT = 'last-good-goals.commit.json';

/**
 * A node as stored, positionally: id, goal, spec, backend id, labels,
 * environment, settings, source file, line, column, spec digest,
 * dependencies, resource key (or null), same-spec key (or null: `InfraDesiredNodeSpec.sameSpec`) and
 * managed digest (null where it is the spec digest: `NodeSpec.managedDigest`, format 7), the keys
 * of the resources it names (or null: `InfraDesiredNodeSpec.names`, format 8) and backend key
 * (`InfraDesiredNodeSpec.backendKey`, format 9; the same-spec key by it, format 10).
 * Goal, backend id, environment and file are indexes into
 * `strings`, labels and settings into their own tables: what nodes repeat is
 * stored once (10,000 file nodes: 1.7 MB instead of 5.2 MB of JSON, read back
 * in 67 ms instead of 96 ms).
 */
type StoredNode = readonly [NodeId, number, InfraNodeSpec, number, number, number, number, number, number, number, string, readonly StoredDependency[], string | null, string | null, string | null, readonly string[] | null, number];
/**
 * A dependency as stored: the node it is on, its source (file index, line, column), implicit (1)
 * or declared (0), and for an edge the domain implies (a file in a directory node's path), why,
 * as an index into `strings` (format 4).
 */
type StoredDependency = readonly [NodeId, number, number, number, 0 | 1] | readonly [NodeId, number, number, number, 0 | 1, number];

interface Stored {
  readonly format: number;
  readonly key: string;
  /** What the key hashes but the goal files (see `GoalSetScope`): a last good set is taken only within it. */
  readonly scope: string;
  readonly files: readonly string[];
  readonly goals: readonly GoalInfo[];
  readonly diagnostics: readonly Diagnostic[];
  readonly gates: readonly (readonly [NodeId, NodeGate])[];
  readonly backends: readonly BackendDeclaration[];
  readonly policyDefaults: readonly (readonly [string, readonly PolicyDefault[]])[];
  readonly strings: readonly string[];
  readonly labels: readonly Readonly<Record<string, string>>[];
  readonly settings: readonly NodeSettings[];
  readonly nodes: readonly StoredNode[];
}

/** Each distinct value once, by a key (the value itself for strings, its JSON for objects). */
class Table<T> {
  readonly values: T[] = [];
  readonly #index = new Map<string, number>();
  readonly #keyOf: (value: T) => string;
  constructor(keyOf: (value: T) => string) {
    this.#keyOf = keyOf;
  }
  of(value: T): number {
    const key = this.#keyOf(value);
    let i = this.#index.get(key);
    if (i === undefined) {
      i = this.values.push(value) - 1;
      this.#index.set(key, i);
    }
    return i;
  }
}

/** `table[i]`, or a throw (caught as a cache miss) for an index the entry does not have. */
function entry<T>(table: readonly T[], i: number): T {
  const v = table[i];
  if (v === undefined) throw new Error(`compiled-goal cache: no entry ${i}`);
  return v;
}

/** Everything a compile depends on but the goal files' bytes: the program, the policy mode, and where the goals are read from. */
export interface GoalSetScope {
  readonly goalsDir: string;
  readonly cwd: string;
  readonly mode: string;
  readonly program: string;
}

function scopeText(scope: GoalSetScope): string {
  return `desiredstate compiled goals ${FORMAT}\0${scope.program}\0${scope.mode}\0${scope.cwd}\0${scope.goalsDir}\0`;
}

/** The scope as stored with an entry. */
export function goalSetScope(scope: GoalSetScope): string {
  return createHash('sha256').update(scopeText(scope)).digest('hex');
}

/**
 * The key of a goal directory's files as read (`readGoalSources`: the bytes the compile is given, never
 * read again), or undefined when they should not be cached: more files or bigger files than the loader
 * accepts, a goal file that is not a regular file or cannot be read, a directory that cannot be read
 * (those fail to load anyway).
 */
export function goalSetKey(scope: GoalSetScope, sources: GoalSources): string | undefined {
  if (sources.read.length === 0 || sources.diagnostics.length > 0) return undefined;
  const h = createHash('sha256').update(scopeText(scope));
  for (const file of sources.read) {
    if (!('bytes' in file)) return undefined;
    h.update(`${file.file}\0`).update(file.bytes).update('\0');
  }
  return h.digest('hex');
}

/** The compiled goal set stored under `key`, or undefined (none, another key, unreadable, or a graph that does not build). */
export function readCompiledGoals(stateDir: string, key: string): LoadedGoals | undefined {
  return readStored(join(stateDir, FILE), (stored) => stored.key === key);
}

/**
 * The goal set last applied within `scope`, `applied` its key as the state records it: kept as the last
 * good goals (`keepAsLastGood`), or, where that was not written (the process killed first), the compiled
 * goals' entry while it is still theirs; whatever goal files it was compiled from, with the goals' commit
 * then (null where it is not known: not in a git work tree, or kept by a version that did not record
 * it): the last good revision, for a daemon that starts on one that does not compile. Undefined when
 * neither is: an entry of goals applied before them is never taken for them.
 */
export function readLastGoodGoals(stateDir: string, scope: string, applied: string): { readonly loaded: LoadedGoals; readonly commit: string | null } | undefined {
  const theirs = (stored: Stored): boolean => stored.key === applied && stored.scope === scope;
  const loaded = readStored(join(stateDir, LAST_GOOD), theirs) ?? readStored(join(stateDir, FILE), theirs);
  if (loaded === undefined) return undefined;
  let commit: string | null = null;
  try {
    const kept = JSON.parse(readFileSync(join(stateDir, LAST_GOOD_COMMIT), 'utf8')) as { key?: unknown; commit?: unknown };
    if (kept.key === applied && typeof kept.commit === 'string') commit = kept.commit;
  } catch {
    // None kept (or unreadable): the commit is not known.
  }
  return { loaded, commit };
}

/**
 * The compiled goal set keyed `key` within `scope`, to be kept as the last good goals once applied
 * (`keepAsLastGood`), and `identity`: which file FILE was when it was stored there (written, or read on
 * a cache hit; `entryIdentity`), so that one a `plan` of other goals put there meanwhile is not kept in
 * its place; undefined when it was not stored.
 */
export interface StoredEntry {
  readonly key: string;
  readonly scope: string;
  readonly loaded: LoadedGoals;
  readonly identity: string | undefined;
}

/** Which file holds the compiled goal set stored now (device and inode: FILE is replaced whole, never written in place); undefined for none. */
export function entryIdentity(stateDir: string): string | undefined {
  return identityOf(join(stateDir, FILE));
}

function identityOf(path: string): string | undefined {
  const s = statSync(path, { bigint: true, throwIfNoEntry: false });
  return s === undefined ? undefined : `${s.dev}:${s.ino}`;
}

/**
 * Keeps `entry` (the goals as they were stored, kept once they are applied, which may be a while later)
 * as the goals last applied, with their `commit`: a second name of FILE while it is still that entry;
 * should it no longer be (a `plan` of other goals replaced it meanwhile) or never have been (`identity`
 * undefined: not stored), the entry written out, never the other goals kept under its key. Best effort:
 * false when it could not.
 */
export function keepAsLastGood(stateDir: string, entry: StoredEntry, commit: string | null): boolean {
  const keep = (tmp: string): void => {
    try {
      linkSync(join(stateDir, FILE), tmp);
    } catch {
      // FILE gone (or not to be linked): the entry is written out below.
    }
    if (entry.identity !== undefined && identityOf(tmp) === entry.identity) return;
    removeQuietly(tmp);
    const text = storedText(entry.key, entry.scope, entry.loaded);
    if (text === undefined) throw new Error('no graph to keep');
    writeFileSync(tmp, text, { mode: 0o600 });
  };
  return (
    bestEffort(() => replaceFile(join(stateDir, LAST_GOOD), keep)) &&
    bestEffort(() => replaceFile(join(stateDir, LAST_GOOD_COMMIT), (tmp) => writeFileSync(tmp, JSON.stringify({ key: entry.key, commit }), { mode: 0o600 })))
  );
}

/** Whether `fn` ran without throwing: the cache is an optimisation, never a failure of the command. */
function bestEffort(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch {
    return false;
  }
}

function readStored(file: string, wanted: (stored: Stored) => boolean): LoadedGoals | undefined {
  let stored: Stored;
  try {
    stored = JSON.parse(readFileSync(file, 'utf8')) as Stored;
  } catch {
    return undefined;
  }
  if (stored.format !== FORMAT || !wanted(stored) || !Array.isArray(stored.nodes)) return undefined;
  try {
    const { strings, settings } = stored;
    const labels = stored.labels.map((l) => Object.freeze(l));
    const built = DesiredGraph.build(
      stored.nodes.map(([id, goal, spec, backendId, label, environment, setting, file, line, col, digest, deps, resource, sameSpec, managed, names, backendKey]) => ({
        id,
        goal: entry(strings, goal),
        spec: desiredNodeSpec(spec, entry(strings, backendId), entry(labels, label), entry(strings, environment), {
          digest,
          managedDigest: managed ?? digest,
          resource: resource ?? undefined,
          names: names ?? undefined,
          sameSpec: sameSpec ?? undefined,
          backendKey: entry(strings, backendKey),
        }),
        dependsOn: deps.map(([on, f, l, c, implicit, why]: StoredDependency) => ({
          on,
          source: { file: entry(strings, f), line: l, col: c },
          implicit: implicit === 1,
          ...(why === undefined ? {} : { why: entry(strings, why) }),
        })),
        settings: entry(settings, setting),
        source: { file: entry(strings, file), line, col },
      })),
      stored.goals,
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

/** Stores a compiled goal set under `key`, within `scope` (atomically; a graph-less result is not stored). Best effort: returns false when it could not. */
export function writeCompiledGoals(stateDir: string, key: string, scope: string, loaded: LoadedGoals): boolean {
  const text = storedText(key, scope, loaded);
  return text !== undefined && bestEffort(() => replaceFile(join(stateDir, FILE), (tmp) => writeFileSync(tmp, text, { mode: 0o600 })));
}

/** A compiled goal set as stored (`Stored`'s JSON); undefined for a result without a graph. */
function storedText(key: string, scope: string, loaded: LoadedGoals): string | undefined {
  const { graph, goals, diagnostics, gates } = loaded.result;
  if (graph === undefined) return undefined;
  const strings = new Table<string>((v) => v);
  const labels = new Table<Readonly<Record<string, string>>>((v) => JSON.stringify(v));
  const settings = new Table<NodeSettings>((v) => JSON.stringify(v));
  // Declaration order (the ids' order), so that the rebuilt graph orders its nodes the same way.
  const nodes = [...graph.ids()].map((id): StoredNode => {
    const n = graph.get(id)!;
    const deps = n.dependsOn.map((d): StoredDependency => {
      const edge = [d.on, strings.of(d.source.file), d.source.line, d.source.col, d.implicit ? 1 : 0] as const;
      return d.why === undefined ? edge : [...edge, strings.of(d.why)];
    });
    const { spec, backendId, labels: nodeLabels, environment, digest, managedDigest, resource, names, sameSpec, backendKey } = n.spec;
    const at = n.source;
    const managed = managedDigest === undefined || managedDigest === digest ? null : managedDigest;
    return [n.id, strings.of(n.goal), spec, strings.of(backendId), labels.of(nodeLabels), strings.of(environment), settings.of(n.settings), strings.of(at.file), at.line, at.col, digest, deps, resource ?? null, sameSpec ?? null, managed, names ?? null, strings.of(backendKey)];
  });
  const stored: Stored = {
    format: FORMAT,
    key,
    scope,
    files: loaded.files,
    goals,
    diagnostics,
    gates: [...gates],
    backends: [...loaded.factory.backends.values()],
    policyDefaults: [...loaded.factory.policyDefaults],
    strings: strings.values,
    labels: labels.values,
    settings: settings.values,
    nodes,
  };
  return JSON.stringify(stored);
}
