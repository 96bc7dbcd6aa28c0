import { formatCheck, formatSarif } from '../../infra/index.ts';
import type { CheckFormat } from '../../infra/index.ts';
import { compileGoals, printDiagnostics } from '../context.ts';
import type { CliContext } from '../context.ts';
import { EXIT } from '../usage.ts';
import { VERSION } from '../version.ts';

/**
 * The policy report: findings per node and goal with severity, verdict and
 * frameworks. Touches nothing (no backend, no secret). Exit 1 when anything blocks.
 */
export async function check(ctx: CliContext, format: CheckFormat): Promise<number> {
  // Hold mode: blocking findings are reported as findings, and the rest of the goal set is still judged.
  const loaded = await compileGoals(ctx, 'hold');
  const errors = loaded.result.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) {
    // Goals that do not compile cannot be judged: report why, as validate does.
    printDiagnostics({ ...ctx, format: format === 'json' ? 'json' : 'text' }, errors);
    return EXIT.failed;
  }
  const report = loaded.policy.checkReport();
  ctx.out((format === 'sarif' ? formatSarif(report, { toolVersion: VERSION }) : formatCheck(report, format)).trimEnd());
  return report.verdict === 'block' ? EXIT.failed : EXIT.ok;
}
