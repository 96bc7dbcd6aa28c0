import { formatLocation } from './node-spec.ts';
import type { SourceLocation } from './node-spec.ts';

export type Severity = 'error' | 'warning' | 'info';

/** One problem found in the goals, pointing into the user's own file. */
export interface Diagnostic extends SourceLocation {
  readonly severity: Severity;
  /** Stable, kebab-case code, for example `unknown-field`. */
  readonly code: string;
  readonly message: string;
}

/**
 * `file:line:col: severity code: message` (`file: …` for a whole file or directory), on one line:
 * a line break the user wrote into what the message quotes (a key, a type, a file name) is shown as
 * `\n` or `\r`, so that a tool reading the diagnostics line by line finds one in each.
 */
export function formatDiagnostic(d: Diagnostic): string {
  return `${formatLocation(d)}: ${d.severity} ${d.code}: ${d.message}`.replace(/[\n\r]/g, (c) => (c === '\n' ? '\\n' : '\\r'));
}

export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  return [...ds].sort(
    (a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col || a.code.localeCompare(b.code),
  );
}

/** Collects diagnostics; compilation goes on after an error so that every problem is reported. */
export class DiagnosticBag {
  readonly items: Diagnostic[] = [];
  add(loc: SourceLocation, severity: Severity, code: string, message: string): void {
    this.items.push({ file: loc.file, line: loc.line, col: loc.col, severity, code, message });
  }
  error(loc: SourceLocation, code: string, message: string): void {
    this.add(loc, 'error', code, message);
  }
  warning(loc: SourceLocation, code: string, message: string): void {
    this.add(loc, 'warning', code, message);
  }
  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === 'error');
  }
}

/**
 * Edit distance, for "did you mean" suggestions: insertions, deletions, substitutions and swaps of two
 * neighbouring characters (`contnet`, `moed`) each count one (Levenshtein's, with the swap of optimal
 * string alignment).
 */
export function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    before = prev;
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The closest candidate, if one is close: within a third of the longer word's length (at least one
 * edit), so that a short word is not "corrected" to an unrelated one (`xy` to `a`).
 */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const w = word.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestDistance && d <= Math.max(1, Math.floor(Math.max(word.length, c.length) / 3))) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** `a` or `an` before `word`, by its first letter (`an aws.s3.bucket node`, `a local backend`). */
export function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
}

export function suggestion(word: string, candidates: Iterable<string>): string {
  const s = didYouMean(word, candidates);
  return s === undefined ? '' : ` (did you mean "${s}"?)`;
}
