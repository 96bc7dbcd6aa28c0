import { assertNever } from '../../runtime/index.ts';
import { formatCheck, formatSarif, formatSarifDiagnostics } from '../../infra/index.ts';
import type { CheckFormat } from '../../infra/index.ts';
import { compileGoals, printDiagnostics } from '../context.ts';
import type { CliContext } from '../context.ts';
import { EXIT } from '../usage.ts';
import { validationDocument } from './goals.ts';
import { VERSION } from '../version.ts';

/**
 * The policy report: findings per node and goal with severity, verdict and
 * frameworks. Touches nothing (no backend, no secret). Exit 1 when anything blocks.
 */
export async function check(ctx: CliContext, format: CheckFormat): Promise<number> {
  // Hold mode: blocking findings are reported as findings, and the rest of the goal set is still judged.
  const loaded = await compileGoals(ctx, 'hold');
  const { diagnostics } = loaded.result;
  if (diagnostics.some((d) => d.severity === 'error')) {
    // Goals that do not compile cannot be judged: report why, exactly as validate does (compiled as
    // validate compiles them: a blocking finding is an error there, not the warning hold mode makes it).
    // The machine formats still write a document to stdout, so that a CI job uploading it gets one
    // exactly when the goals break.
    const strict = (await compileGoals(ctx, 'refuse')).result;
    switch (format) {
      case 'sarif':
        ctx.out(formatSarifDiagnostics(strict.diagnostics, { toolVersion: VERSION }).trimEnd());
        break;
      case 'json':
        ctx.out(validationDocument(strict));
        break;
      case 'text':
        printDiagnostics({ ...ctx, format: 'text' }, strict.diagnostics);
        break;
      default:
        return assertNever(format, 'check format');
    }
    return EXIT.failed;
  }
  // The compile's warnings with the findings (a rule's environment that no goal has), as validate shows them.
  const report = loaded.policy.checkReport(diagnostics);
  ctx.out((format === 'sarif' ? formatSarif(report, { toolVersion: VERSION }) : formatCheck(report, format)).trimEnd());
  return report.verdict === 'block' ? EXIT.failed : EXIT.ok;
}
