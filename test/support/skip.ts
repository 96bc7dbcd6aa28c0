/**
 * A warning that cannot be missed in the test output, for tests that skip (`it.skipIf`,
 * `describe.skipIf`) because this machine lacks what they need: printed once, when the file loads.
 */
export function warnSkipped(lines: readonly string[]): void {
  const bar = '!'.repeat(76);
  console.warn(['', bar, ...lines.map((l) => `!! ${l}`), bar, ''].join('\n'));
}
