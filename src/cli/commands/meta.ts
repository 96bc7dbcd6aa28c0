import { mapLimit } from '../../runtime/index.ts';
import { goalJsonSchema } from '../json-schema.ts';
import { compileGoals, printDiagnostics, provisioner, registry } from '../context.ts';
import type { CliContext } from '../context.ts';
import { table } from '../format.ts';
import { EXIT } from '../usage.ts';

export function schema(ctx: CliContext): number {
  ctx.out(JSON.stringify(goalJsonSchema(), null, 2));
  return EXIT.ok;
}

/** How many backends' health checks run at once (each may wait up to `HEALTH_TIMEOUT_MS` on a server). */
const HEALTH_PARALLELISM = 8;
const HEALTH_TIMEOUT_MS = 10_000;

/** Configured backends, their types and health. */
export async function backends(ctx: CliContext): Promise<number> {
  const loaded = await compileGoals(ctx);
  // A Backend document that does not compile is missing from the list: say why, and never exit 0 over it.
  // Warnings too, as validate shows them: only errors change the exit code.
  const diagnostics = loaded.result.diagnostics;
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (ctx.format !== 'json') printDiagnostics(ctx, diagnostics);
  const p = provisioner(ctx, loaded);
  try {
    // At once, not one after another: ten unreachable servers took ten connect timeouts. Listed in order.
    const rows = await mapLimit([...p.backends], HEALTH_PARALLELISM, async ([id, backend]) => {
      const h = backend.health === undefined ? { status: 'healthy' as const } : await backend.health({ signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS), log: ctx.log });
      return { id, type: backend.type, health: h.status, ...(h.status === 'unhealthy' ? { message: h.message } : {}) };
    });
    if (ctx.format === 'json') ctx.out(JSON.stringify({ backends: rows, types: registry().types(), diagnostics }, null, 2));
    else ctx.outLines(table([['BACKEND', 'TYPE', 'HEALTH'], ...rows.map((r) => [r.id, r.type, r.message === undefined ? r.health : `${r.health}: ${r.message}`])]));
    return errors.length > 0 || rows.some((r) => r.health !== 'healthy') ? EXIT.failed : EXIT.ok;
  } finally {
    await p.close();
  }
}
