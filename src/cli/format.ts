import type { FieldDiff, PlanEntry } from '../runtime/index.ts';
import { assertNever } from '../runtime/index.ts';
import type { PolicyDefault } from '../infra/index.ts';

const SYMBOL = { create: '+', update: '~', delete: '-', orphan: '○', drift: '!', none: '=', blocked: '⊘', held: '⊘', error: 'x' } as const;

/**
 * Control characters (but newline and tab) and bidirectional overrides shown
 * as escapes: text from wrapped programs and generated scripts reaches the
 * terminal, where an escape sequence could recolour, retitle or hide what
 * the operator reads, a carriage return overwrite a line, and a bidi
 * override reorder a script under review. Escapes are JSON's, so that
 * `--format json` output stays valid JSON.
 */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    // JSON's own escapes, so that a JSON document stays valid JSON (it escapes C0 itself, not DEL, C1 or bidi).
    return c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/**
 * `text` as one line, as a bad invocation's reason must be (CLI.md): what the user typed (`--goals
 * "$DIR"` with a newline in it) is quoted into it, a newline shown as `\n` and any other control
 * character as `terminalSafe` shows it.
 */
export function oneLine(text: string): string {
  return terminalSafe(text).replaceAll('\n', '\\n');
}

/** The most characters `show` prints of one value. */
const SHOWN_CHARS = 60;

/**
 * A spec value on one line, cut at `SHOWN_CHARS` characters (a plan's or a drift listing's line is
 * read, not parsed: `--format json` has every value whole). A string is quoted; anything else is its
 * JSON (an exec node's `input`, a list), cut the same way.
 */
export function show(value: unknown): string {
  // One line either way (JSON escapes newlines); the ellipsis only where something was cut.
  if (typeof value === 'string') {
    const head = firstChars(value, SHOWN_CHARS - 3);
    return head === undefined ? JSON.stringify(value) : `${JSON.stringify(head)}…`;
  }
  const json = JSON.stringify(value);
  if (json === undefined) return 'absent';
  const head = firstChars(json, SHOWN_CHARS - 1);
  return head === undefined ? json : `${head}…`;
}

/**
 * The first `keep` characters of `text` when it has more than `SHOWN_CHARS` of them, else undefined:
 * cut between characters, never inside one (half an emoji printed as `\ud83c`), and without making an
 * array of a 600 KB text's characters to count them.
 */
function firstChars(text: string, keep: number): string | undefined {
  if (text.length <= SHOWN_CHARS) return undefined;
  // At most two UTF-16 units a character: past 2·SHOWN_CHARS + 1 units, there are more than SHOWN_CHARS characters.
  const head = Array.from(text.slice(0, 2 * SHOWN_CHARS + 2));
  if (text.length <= 2 * SHOWN_CHARS + 2 && head.length <= SHOWN_CHARS) return undefined;
  return head.slice(0, keep).join('');
}

export function formatDiff(d: FieldDiff): string[] {
  const notes = [...(d.masked === true ? ['secret'] : []), ...(d.cause === 'secret-rotated' ? ['rotated'] : []), ...(d.cannotCorrect !== undefined ? [`not corrected: ${d.cannotCorrect}`] : []), ...(d.blocksDependents === true ? ['its dependents wait for it'] : [])];
  const lines = [`      ${d.path}: ${show(d.actual)} → ${show(d.desired)}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`];
  if (d.detail !== undefined) for (const l of d.detail.split('\n').slice(0, 40)) lines.push(`        ${l}`);
  return lines;
}

/** The human plan: one line per node with its symbol, then field diffs. */
export function formatPlan(
  entries: readonly PlanEntry[],
  options: {
    showUnchanged: boolean;
    policyDefaults?: ReadonlyMap<string, readonly PolicyDefault[]>;
    /** A node's desired spec, listed under a create (as Terraform lists a new resource's attributes). */
    desired?: (id: string) => Readonly<Record<string, unknown>> | undefined;
    /** The secrets a create needs that cannot be read here, each with why. */
    unreadableSecrets?: (id: string) => readonly { ref: string; reason: string }[] | undefined;
  },
): string[] {
  const lines: string[] = [];
  for (const e of entries) {
    const p = e.planned;
    if (p.action === 'none' && p.ignored === undefined && !options.showUnchanged) continue;
    const head = `  ${SYMBOL[p.action]} ${e.id} (${e.type} via ${e.backendId})`;
    const policySet = options.policyDefaults?.get(e.id) ?? [];
    const setBy = (field: string): string => {
      const d = policySet.find((x) => x.field === field);
      return d === undefined ? '' : ` (set by policy ${d.policy})`;
    };
    switch (p.action) {
      case 'create': {
        lines.push(head);
        if (p.letsGo !== undefined) lines.push(`      (it managed ${p.letsGo} before: that one is left in place, not deleted)`);
        const desired = options.desired?.(e.id);
        for (const [field, value] of Object.entries(desired ?? {})) if (field !== 'type' && value !== undefined) lines.push(`      ${field} = ${show(value)}${setBy(field)}`);
        // Without the desired spec at hand, the fields a policy set are still listed.
        for (const d of policySet) if (desired?.[d.field] === undefined) lines.push(policySetLine(d));
        for (const m of options.unreadableSecrets?.(e.id) ?? []) lines.push(`      warning: secret ${m.ref} cannot be read here (${m.reason}): the create would fail`);
        break;
      }
      case 'none':
        if (p.ignored === undefined) lines.push(head);
        else {
          lines.push(`${head} unchanged: ignoreFields leaves ${p.ignored.map((d) => d.path).join(', ')} as found, so the goal's edit is not applied`);
          for (const d of p.ignored) lines.push(...formatDiff(d));
        }
        break;
      case 'delete':
        lines.push(p.refused === undefined ? head : `${head} refused: ${p.refused}`);
        break;
      case 'orphan': {
        if (p.gone === true) {
          lines.push(`${head} removed from the goals: forgotten, its resource gone already (its read finds nothing: no delete is sent)`);
          break;
        }
        const why =
          p.policyHold !== undefined
            ? `not deleted: it is ${p.policyHold}, and a node a policy holds is never deleted, not even under prune: true with deletionPolicy: Delete`
            : p.sameSpecAs !== undefined
              ? `not deleted: node ${p.sameSpecAs}, new to the goals, has its backend and spec exactly, and may manage the same resource; to delete it, remove it in a change that adds no node of its spec`
              : 'deleted only under prune: true with deletionPolicy: Delete';
        const left = p.createCutShort === true ? 'what its create, cut short, may have made left as it is' : 'its resource left as it is';
        lines.push(`${head} removed from the goals: forgotten, ${p.claimedBy === undefined ? `${left} (${why})` : `its resource now managed by ${p.claimedBy}`}`);
        break;
      }
      case 'update':
        lines.push(p.knownAfterApply === undefined ? head : `${head} known after apply: reads outputs of ${p.knownAfterApply.join(', ')}, which this plan changes`);
        for (const d of p.diffs) lines.push(...formatDiff(d));
        break;
      case 'drift':
        lines.push(`${head} drifted${p.correct ? ', will be corrected' : `, report only (${p.reportOnly ?? 'selfHeal: false'})`}`);
        for (const d of p.diffs) lines.push(...formatDiff(d));
        break;
      case 'blocked':
      case 'held':
        lines.push(`${head} ${p.action}: ${cellLine(p.reason)}`);
        break;
      case 'error':
        // With its hint, as apply lists the fault: what to do about it. On its line, as status shows it.
        lines.push(`${head} error (${p.fault.class}): ${cellLine(p.fault.message)}${p.fault.hint === undefined ? '' : ` (hint: ${p.fault.hint})`}`);
        break;
      default:
        assertNever(p, 'planned action');
    }
    if (p.action === 'update') for (const d of policySet) lines.push(policySetLine(d));
  }
  return lines;
}

function policySetLine(d: PolicyDefault): string {
  return `      ${d.field} = ${show(d.value)} (set by policy ${d.policy})`;
}

export function planCounts(entries: readonly PlanEntry[]): Record<PlanEntry['planned']['action'], number> {
  const c = { create: 0, update: 0, delete: 0, orphan: 0, drift: 0, none: 0, blocked: 0, held: 0, error: 0 };
  for (const e of entries) c[e.planned.action]++;
  return c;
}

/**
 * A message for one table cell (status's REASON, a run's DETAIL) or a node's line of plan and apply: one line. A multi-line one (a
 * command's last lines of stderr) is shown by its last non-empty line, where a program conventionally
 * writes its error, with how many lines there are; `--format json` has the message whole.
 */
export function cellLine(text: string): string {
  if (!text.includes('\n')) return text;
  const lines = text.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '');
  if (lines.length <= 1) return lines[0] ?? '';
  return `${lines[lines.length - 1]!} (last of ${lines.length} lines)`;
}

/**
 * An epoch time in ISO 8601 (`-` for none). One past the last date there is (a state written by a
 * build that let a cool-down reach 9e15 ms) is shown as its number: a listing must not throw on it.
 */
export function isoTime(ms: number | null): string {
  if (ms === null) return '-';
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `${ms} ms after 1970` : d.toISOString();
}

export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}
