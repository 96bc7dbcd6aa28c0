/** One line of a line diff: kept (` `), removed (`-`) or added (`+`). */
export interface LineOp {
  readonly kind: ' ' | '-' | '+';
  readonly line: string;
}

/**
 * The edit script between two lists of lines by longest common subsequence
 * (quadratic: callers bound the sizes). Removals come before additions, as
 * diff(1) prints them. Backends render it their own way (a drift detail, a
 * playbook task's change).
 */
export function lineOps(a: readonly string[], b: readonly string[]): LineOp[] {
  // The LCS table, filled from the end.
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    const row = lcs[i]!;
    const below = lcs[i + 1]!;
    for (let j = b.length - 1; j >= 0; j--) row[j] = a[i] === b[j] ? below[j + 1]! + 1 : Math.max(below[j]!, row[j + 1]!);
  }
  const ops: LineOp[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push({ kind: ' ', line: a[i++]! });
      j++;
    } else if (i < a.length && (j === b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      ops.push({ kind: '-', line: a[i++]! });
    } else {
      ops.push({ kind: '+', line: b[j++]! });
    }
  }
  return ops;
}
