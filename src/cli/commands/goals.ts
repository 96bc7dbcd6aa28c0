import { createInterface } from 'node:readline/promises';
import { DesiredStateError, ErrorCodes, Reconciler, shownTemplate, SqliteStateStore } from '../../runtime/index.ts';
import type { CompileResult, DesiredGraph, NodeOutcome } from '../../runtime/index.ts';
import { infraSpecCodec, processLeaseDir, settleLeftoverProcesses, shownSpec, unreadableSecretRefs } from '../../infra/index.ts';
import type { InfraDesiredNodeSpec, PolicyDefault } from '../../infra/index.ts';
import { BACKENDS_META, compileGoals, compileGoalsCached, declaredBackends, openStore, printDiagnostics, provisioner, pruneHistory, recordBackendPlaces, stateFile } from '../context.ts';
import type { CachedGoals, CliContext } from '../context.ts';
import { cellLine, formatPlan, planCounts, terminalSafe } from '../format.ts';
import { goalsCommit } from '../git.ts';
import { EXIT, UsageError } from '../usage.ts';

/**
 * Compiles (through the compiled-goal cache for plan and apply: `cached`) and prints diagnostics; the graph
 * when there is no error, and how to keep the goals as the last good ones once applied.
 */
async function compiled(ctx: CliContext, cached = false): Promise<(CachedGoals & { graph: DesiredGraph<InfraDesiredNodeSpec> }) | undefined> {
  const c: CachedGoals = cached ? await compileGoalsCached(ctx) : { loaded: await compileGoals(ctx), applying: () => undefined, keepAsLastGood: () => undefined };
  const { loaded } = c;
  const { diagnostics, graph } = loaded.result;
  if (graph === undefined) {
    printDiagnostics(ctx, diagnostics);
    return undefined;
  }
  // With --format json the warnings go into the command's document (as `diagnostics`, validate's name for them).
  if (diagnostics.length > 0 && ctx.format !== 'json') printDiagnostics(ctx, diagnostics);
  return { ...c, graph };
}

/** `validate --format json`'s document (check writes it too, for goals that do not compile): valid when there is a graph. */
export function validationDocument(result: Pick<CompileResult<InfraDesiredNodeSpec>, 'diagnostics' | 'graph' | 'goals'>): string {
  const { diagnostics, graph, goals } = result;
  // Goals that do not compile have no graph: their nodes are counted as read, as their goals are.
  const nodes = graph?.size ?? goals.reduce((n, g) => n + g.nodeCount, 0);
  return JSON.stringify({ valid: graph !== undefined, goals: goals.length, nodes, diagnostics }, null, 2);
}

export async function validate(ctx: CliContext): Promise<number> {
  const loaded = await compileGoals(ctx, 'refuse');
  const { diagnostics, graph, goals } = loaded.result;
  if (ctx.format === 'json') {
    ctx.out(validationDocument(loaded.result));
  } else {
    printDiagnostics(ctx, diagnostics, 'out');
    if (graph !== undefined) ctx.out(`valid: ${goals.length} goal(s), ${graph.size} node(s), ${loaded.factory.backends.size} backend(s)`);
  }
  return graph === undefined ? EXIT.failed : EXIT.ok;
}

export async function plan(ctx: CliContext, options: { showUnchanged: boolean }): Promise<number> {
  const c = await compiled(ctx, true);
  if (c === undefined) return EXIT.failed;
  const store = openStore(ctx, { lock: false });
  const p = provisioner(ctx, c.loaded);
  try {
    const reconciler = new Reconciler({ provisioner: p.provisioner, store, log: ctx.log, codec: infraSpecCodec });
    // A holder on another host (alive unknown) is taken to be running.
    const holder = SqliteStateStore.lockHolder(stateFile(ctx));
    const othersRunning = holder !== undefined && holder.alive !== false;
    const backends = declaredBackends(store, c.loaded, ctx.cwd);
    const changed = backends.changed;
    p.provisioner.declare(backends);
    const entries = await reconciler.plan(c.graph, { signal: AbortSignal.timeout(10 * 60_000), gates: c.loaded.result.gates, othersRunning, changedBackends: changed });
    const counts = planCounts(entries);
    const refused = entries.filter((e) => e.planned.action === 'delete' && e.planned.refused !== undefined).length;
    const spec = (id: string): Readonly<Record<string, unknown>> | undefined => c.graph.get(id)?.spec.spec;
    // As shown: as it will be written (a `$${` escape the `${` it stands for), and what looks like a
    // secret in a file's text masked, as its drift would be.
    const desired = (id: string): Readonly<Record<string, unknown>> | undefined => {
      const s = spec(id);
      return s === undefined ? undefined : shownSpec(shownTemplate(s));
    };
    // A create reads its secrets only when it runs (a role's password), so its observation said nothing
    // of one missing here: said now, rather than by the apply that would fail on it. Read where the apply
    // reads them: a fromFile path written `$${` names a file with `${` in its name.
    const unreadable = new Map<string, { ref: string; reason: string }[]>();
    for (const e of entries) {
      if (e.planned.action !== 'create') continue;
      const missing = await unreadableSecretRefs(shownTemplate(spec(e.id)), { env: ctx.env, cwd: ctx.cwd });
      if (missing.length > 0) unreadable.set(e.id, missing);
    }
    if (ctx.format === 'json') {
      // The fields a policy default set ("shown in plans as policy-set", GOAL-FORMAT.md), on every entry that has them.
      const policySet = (id: string): { policySet?: readonly PolicyDefault[] } => {
        const set = c.loaded.factory.policyDefaults.get(id);
        return set === undefined ? {} : { policySet: set };
      };
      const entry = (e: (typeof entries)[number]): object => ({
        ...e,
        ...(e.planned.action === 'create' ? { desired: desired(e.id) } : {}),
        ...policySet(e.id),
        ...(unreadable.has(e.id) ? { unreadableSecrets: unreadable.get(e.id) } : {}),
      });
      ctx.out(JSON.stringify({ entries: entries.map(entry), counts, diagnostics: c.loaded.result.diagnostics }, null, 2));
    } else {
      ctx.outLines(formatPlan(entries, { showUnchanged: options.showUnchanged, policyDefaults: c.loaded.factory.policyDefaults, desired, unreadableSecrets: (id) => unreadable.get(id) }));
      const needing = unreadable.size > 0 ? ` ${unreadable.size} create(s) need secrets that cannot be read here: apply would fail on them.` : '';
      const deleting = refused === 0 ? `${counts.delete} to delete` : `${counts.delete} to delete (${refused} refused by the mass-deletion guard without --allow-mass-deletion)`;
      const forgetting = counts.orphan === 0 ? '' : ` ${counts.orphan} removed from the goals to forget, their resources left as they are.`;
      ctx.out(`Plan: ${counts.create} to create, ${counts.update} to update, ${deleting}, ${counts.drift} drifted, ${counts.none} unchanged, ${counts.blocked + counts.held} blocked or held, ${counts.error} errors.${forgetting}${needing}`);
    }
    noteEmptyGoals(ctx, c.graph.size, store);
    // As apply would exit: a node blocked (by a policy, an approval, a dependency) or held is one apply
    // cannot converge, so 1 rather than a "nothing to do" that a CI gate would take for converged; so is
    // a mass deletion apply refuses (without --allow-mass-deletion).
    if (counts.error > 0 || counts.blocked + counts.held > 0 || refused > 0) return EXIT.failed;
    // Drift no update can correct, where the goal asks for correction, is one apply cannot converge either.
    const stuck = entries.some((e) => e.planned.action === 'drift' && c.graph.get(e.id)?.settings.selfHeal !== false && e.planned.diffs.some((d) => d.cannotCorrect !== undefined));
    if (stuck) return EXIT.failed;
    // Drift that is only reported (selfHeal: false) is nothing for apply to do: it would never reach 0. A
    // rotated secret shown with it is (it is applied whatever selfHeal says).
    const corrections = entries.filter((e) => e.planned.action === 'drift' && (e.planned.correct || e.planned.diffs.some((d) => d.cause !== undefined))).length;
    // Forgetting a node removed from the goals is apply's to do too (the state changes, the resource does not).
    const changes = counts.create + counts.update + counts.delete + counts.orphan + corrections;
    return changes > 0 ? EXIT.changes : EXIT.ok;
  } finally {
    await p.close();
    store.close();
  }
}

/**
 * Goals that hold no nodes over a state that holds some: an empty goal set never deletes or forgets
 * anything (it is taken for a mistake: a bad checkout, the wrong directory), and plan and apply say so
 * rather than a silent "0 to delete".
 */
function noteEmptyGoals(ctx: CliContext, nodes: number, store: SqliteStateStore): void {
  if (nodes > 0) return;
  const kept = store.countNodes();
  if (kept === 0) return;
  const note = `the goals hold no nodes: the ${kept} node(s) in the state are kept as they are, neither deleted nor forgotten (an empty goal set never deletes anything)`;
  if (ctx.format === 'json') ctx.log.warn({ kept }, note);
  else ctx.out(`Note: ${note}.`);
}

export async function apply(ctx: CliContext, options: { yes: boolean; allowMassDeletion: boolean; concurrency: number; history: number | undefined }): Promise<number> {
  // Looked up while the goals load (a few file reads on the thread pool; it never throws).
  const commitLookup = goalsCommit(ctx.goalsDir, ctx.log);
  const c = await compiled(ctx, true);
  if (c === undefined) return EXIT.failed;
  const store = openStore(ctx, { lock: true });
  const p = provisioner(ctx, c.loaded);
  const abort = new AbortController();
  // The signal's name is the reason: the exit status tells them apart (130, 143). A second one has its default effect.
  const onSignal = (signal: NodeJS.Signals): void => abort.abort(signal);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const reconciler = new Reconciler({ provisioner: p.provisioner, store, log: ctx.log, codec: infraSpecCodec, concurrency: options.concurrency });
    // Commands a daemon or apply killed -9 left running on this state: waited for (or killed at their
    // timeout) before anything is observed, as the daemon does at its start.
    await settleLeftoverProcesses(processLeaseDir(ctx.stateDir), { log: ctx.log, signal: abort.signal });
    stillOwned(store, 'commands left running');
    const commit = await commitLookup;
    // Before the delete question: a delete through a backend that now points elsewhere is refused, not asked about.
    const backends = declaredBackends(store, c.loaded, ctx.cwd);
    const changed = backends.changed;
    p.provisioner.declare(backends);
    recordBackendPlaces(store, backends);
    let allowDeletions = options.yes;
    if (!allowDeletions) {
      // What would be deleted is known from the store alone: no need to observe anything to ask.
      // Only the deletes apply will attempt: those it refuses before any backend call (plan's `x`, and `⊘` behind them) are not asked about.
      const planned = await reconciler.plannedDeletions(c.graph, { signal: abort.signal, gates: c.loaded.result.gates, allowMassDeletion: options.allowMassDeletion });
      // None to attempt, nothing to consent to: apply goes through the refused ones and lists them (`x`, `⊘`), as plan does.
      const answer = planned.attempted.length > 0 ? await confirmDeletes(planned.attempted, planned.refused.length, abort.signal) : 'yes';
      // Interrupted at the question: nothing has been done yet (no run started), and nothing is.
      if (answer === 'interrupted') throw new DesiredStateError(ErrorCodes.Interrupted, 'interrupted at the delete question: nothing was applied');
      allowDeletions = answer === 'yes';
      if (planned.attempted.length > 0) stillOwned(store, 'an answer');
    }
    // The goals last applied from here on, in the state, before anything of them is (see `applying`).
    c.applying(store);
    const result = await reconciler.apply(c.graph, { signal: abort.signal, gates: c.loaded.result.gates, commit, trigger: 'apply', allowDeletions, allowMassDeletion: options.allowMassDeletion, changedBackends: changed });
    const interruptedBy = abort.signal.aborted ? (abort.signal.reason as NodeJS.Signals) : undefined;
    // Applied, so the last good goals, with their commit, for a daemon that starts on a revision that does not
    // compile: not before (an apply refused, the state locked by the daemon, applied nothing). A mass deletion
    // refused here leaves them so all the same: the rest of them is applied, and the daemon's guard refuses
    // those deletions again.
    c.keepAsLastGood(commit);
    const s = result.summary;
    // Declined (the answer was not yes, or there was no terminal to ask on): the deletes it would have sent.
    const declined = result.declinedDeletions;
    // Drift no update can correct (something of another kind at a file's path), where the goal asks for it
    // to be corrected: reported and left, and not converged, as a failed node is not.
    const stuck = new Map<string, string>();
    for (const [id, o] of result.outcomes) {
      // Left beside a correction (the node updated), or alone (reported).
      if (o.status === 'updated' && o.uncorrectable !== undefined) stuck.set(id, o.uncorrectable);
      if (o.status !== 'drift-reported' || c.graph.get(id)?.settings.selfHeal === false) continue;
      const why = o.diffs.find((d) => d.cannotCorrect !== undefined)?.cannotCorrect;
      if (why !== undefined) stuck.set(id, why);
    }
    // The backends as applied, once every node reached them: until then, a changed one stays changed for the next apply.
    if (s.failed === 0 && s.blocked === 0 && s.held === 0 && !abort.signal.aborted) store.setMeta(BACKENDS_META, JSON.stringify(backends.keys));
    if (ctx.format === 'json') {
      ctx.out(JSON.stringify({ runId: result.runId, summary: s, outcomes: Object.fromEntries(result.outcomes), refusedDeletions: result.refusedDeletions ?? null, declinedDeletions: declined.length, declinedNodes: declined, interrupted: interruptedBy ?? null, diagnostics: c.loaded.result.diagnostics }, null, 2));
    } else {
      const listed: string[] = [];
      // One line a node: a multi-line message (a command's last lines of stderr) as status shows it; --format json has it whole.
      for (const [id, o] of result.outcomes) {
        if (o.status === 'failed') listed.push(`  x ${id}: ${o.fault.class}: ${cellLine(o.fault.message)}${o.fault.hint === undefined ? '' : ` (hint: ${o.fault.hint})`}`);
        else if (o.status === 'blocked' || o.status === 'held') listed.push(`  ⊘ ${id}: ${o.status}: ${cellLine(o.reason)}`);
        else if (o.status !== 'unchanged') listed.push(`  ${APPLY_SYMBOL[o.status]} ${id}: ${o.status}${stuck.has(id) ? `: ${stuck.get(id)!}` : ''}`);
      }
      ctx.outLines(listed);
      if (result.refusedDeletions !== undefined) {
        ctx.out(`  refused to delete ${result.refusedDeletions.count} nodes (limit ${result.refusedDeletions.limit}); rerun with --allow-mass-deletion if that is intended`);
      }
      // Each node counts once by what apply did to it; drift, which may be corrected (updated) or only reported (left unchanged), is told apart after.
      const reportedOnly = [...result.outcomes.values()].filter((o) => o.status === 'drift-reported').length;
      const drift = s.drifted === 0 ? '' : `; ${s.drifted} drifted${reportedOnly > 0 ? ` (${reportedOnly} reported only, left as found)` : ''}`;
      const forgotten = (s.orphaned ?? 0) === 0 ? '' : `, ${s.orphaned} forgotten`;
      ctx.out(`Apply: ${s.created} created, ${s.updated} updated, ${s.deleted} deleted${forgotten}, ${s.unchanged} unchanged, ${s.failed} failed, ${s.blocked} blocked, ${s.held} held${drift}.`);
    }
    noteEmptyGoals(ctx, c.graph.size, store);
    pruneHistory(ctx, store, options.history);
    // Deletions left undone (declined, or no terminal to ask on) mean the goals are not reached: not converged.
    if (declined.length > 0 && ctx.format !== 'json') ctx.out(`  not converged: ${declined.length} deletion(s) not done`);
    if (stuck.size > 0 && ctx.format !== 'json') ctx.out(`  not converged: ${stuck.size} drift(s) no update can correct, left as found`);
    if (interruptedBy !== undefined) {
      // As the daemon's shutdown: what was cut off spent no attempt, and is resolved by observing at the next run.
      if (ctx.format !== 'json') ctx.out(`  interrupted (${interruptedBy}): the operations cut off are left pending, resolved by observing at the next apply or daemon start`);
      return interruptedBy === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted;
    }
    const ok = s.failed === 0 && s.blocked === 0 && s.held === 0 && result.refusedDeletions === undefined && declined.length === 0 && stuck.size === 0;
    return ok ? EXIT.ok : EXIT.failed;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await p.close();
    store.close();
  }
}

/**
 * Refuses to go on when the lock or state file of `store` was removed or replaced while apply waited (for
 * `what`: a wait that may be long): a daemon may have been let in on the state meanwhile. Not looked at during
 * the pass, which holds the lock for seconds as a rule; the daemon looks every few seconds.
 */
function stillOwned(store: SqliteStateStore, what: string): void {
  const lost = store.lostOwnership();
  if (lost !== undefined) throw new DesiredStateError(ErrorCodes.StateStore, `${lost.reason} while apply waited for ${what}: another desiredstate may hold the state now; nothing was applied`, { context: { file: lost.file } });
}

/** apply's symbol for an outcome it lists, as plan shows the same change: drift only reported is `!`. */
const APPLY_SYMBOL = {
  created: '+',
  adopted: '~',
  updated: '~',
  orphaned: '○',
  deleted: '-',
  'drift-reported': '!',
} as const satisfies Record<Exclude<NodeOutcome['status'], 'unchanged' | 'failed' | 'blocked' | 'held'>, string>;

/**
 * Asks on the terminal (stdin and stderr) before deleting `ids`: `yes` only for the answer "yes"; `interrupted` for Ctrl-C
 * (or a SIGINT or SIGTERM, `signal`) while it asks; anything else, the end of the input (Ctrl-D) too, `no`.
 * `refused`: how many more removed nodes apply will not delete (only counted: plan says why).
 */
async function confirmDeletes(ids: readonly string[], refused: number, signal: AbortSignal): Promise<'yes' | 'no' | 'interrupted'> {
  // On stderr, where the terminal is when stdout is not (`apply > apply.log`), and as --format json
  // needs: stdout carries only the result.
  const say = (t: string): void => void process.stderr.write(`${terminalSafe(t)}\n`);
  const more = refused === 0 ? '' : ` (${refused} more removed node(s) cannot be deleted: see plan)`;
  say(`apply would delete ${ids.length} node(s): ${ids.join(', ')}${more}`);
  // Both a terminal: with stderr redirected (`2>log`), the question would go where no one reads it while
  // apply waits for an answer on the terminal.
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    say('not deleting: no terminal to ask on; pass --yes to allow deletions');
    return 'no';
  }
  const output = process.stderr;
  const rl = createInterface({ input: process.stdin, output });
  // The terminal is raw while readline asks: Ctrl-C is a key, not a signal, and comes here.
  const ctrlC = new AbortController();
  rl.on('SIGINT', () => ctrlC.abort());
  try {
    const answer = await rl.question('Delete them? Type "yes" to confirm: ', { signal: AbortSignal.any([signal, ctrlC.signal]) });
    return answer.trim() === 'yes' ? 'yes' : 'no';
  } catch (err) {
    // Ctrl-D ends the input (an AbortError too): no answer, so no.
    if (!(err instanceof Error) || err.name !== 'AbortError') throw err;
    // readline ends the line of a question its signal aborted; after Ctrl-D, what follows starts a line of its own.
    if (signal.aborted || ctrlC.signal.aborted) return 'interrupted';
    output.write('\n');
    return 'no';
  } finally {
    rl.close();
  }
}

export async function graph(ctx: CliContext): Promise<number> {
  const c = await compiled(ctx);
  if (c === undefined) return EXIT.failed;
  const format = ctx.format ?? 'dot';
  const lines: string[] = [];
  if (format === 'dot') {
    lines.push('digraph desiredstate {', '  rankdir=LR;', '  node [shape=box];');
    // The label's two lines are joined by DOT's own `\n` escape, outside the escaping of their text.
    for (const n of c.graph.order) lines.push(`  ${dotString(n.id)} [label="${dotEscape(n.id)}\\n${dotEscape(n.spec.type)}"];`);
    for (const n of c.graph.order) for (const d of n.dependsOn) lines.push(`  ${dotString(d.on)} -> ${dotString(n.id)}${d.implicit ? ' [style=dashed]' : ''};`);
    lines.push('}');
  } else if (format === 'mermaid') {
    const ids = new Map(c.graph.order.map((n, i) => [n.id, `n${i}`]));
    lines.push('flowchart LR');
    for (const n of c.graph.order) lines.push(`  ${ids.get(n.id)}["${n.id}<br/>${n.spec.type}"]`);
    for (const n of c.graph.order) for (const d of n.dependsOn) lines.push(`  ${ids.get(d.on)} ${d.implicit ? '-.->' : '-->'} ${ids.get(n.id)}`);
  } else if (format === 'json') {
    lines.push(JSON.stringify({ nodes: c.graph.order.map((n) => ({ id: n.id, type: n.spec.type, backend: n.spec.backendId, goal: n.goal, dependsOn: n.dependsOn.map((d) => d.on) })) }, null, 2));
  } else {
    throw new UsageError(`--format must be dot, mermaid or json for graph (got "${format}")`);
  }
  ctx.outLines(lines);
  return EXIT.ok;
}

/** Text for inside a DOT double-quoted string: `"` and `\` escaped, a line break as DOT's `\n` (JSON's escaping is not DOT's). */
export function dotEscape(text: string): string {
  return text.replace(/["\\]/g, '\\$&').replace(/\r?\n/g, '\\n');
}

/** A DOT double-quoted string. */
export function dotString(text: string): string {
  return `"${dotEscape(text)}"`;
}
