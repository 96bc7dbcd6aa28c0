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

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate within a small edit distance, if any. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const limit = Math.max(2, Math.floor(word.length / 3));
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance && d <= limit) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

export function suggestion(word: string, candidates: Iterable<string>): string {
  const s = didYouMean(word, candidates);
  return s === undefined ? '' : ` (did you mean "${s}"?)`;
}
