import { goalJsonSchema } from '../json-schema.ts';
import { compileGoals, printDiagnostics, provisioner, registry } from '../context.ts';
import type { CliContext } from '../context.ts';
import { table } from '../format.ts';
import { EXIT } from '../usage.ts';

export function schema(ctx: CliContext): number {
  ctx.out(JSON.stringify(goalJsonSchema(), null, 2));
  return EXIT.ok;
}

/** Configured backends, their types and health. */
export async function backends(ctx: CliContext): Promise<number> {
  const loaded = await compileGoals(ctx);
  // A Backend document that does not compile is missing from the list: say why, and never exit 0 over it.
  const errors = loaded.result.diagnostics.filter((d) => d.severity === 'error');
  if (ctx.format !== 'json') printDiagnostics(ctx, errors);
  const p = provisioner(ctx, loaded);
  try {
    const rows: { id: string; type: string; health: string; message?: string }[] = [];
    for (const [id, backend] of p.backends) {
      const signal = AbortSignal.timeout(10_000);
      const h = backend.health === undefined ? { status: 'healthy' as const } : await backend.health({ signal, log: ctx.log });
      rows.push({ id, type: backend.type, health: h.status, ...(h.status === 'unhealthy' ? { message: h.message } : {}) });
    }
    if (ctx.format === 'json') ctx.out(JSON.stringify({ backends: rows, types: registry().types(), diagnostics: errors }, null, 2));
    else ctx.outLines(table([['BACKEND', 'TYPE', 'HEALTH'], ...rows.map((r) => [r.id, r.type, r.message === undefined ? r.health : `${r.health}: ${r.message}`])]));
    return errors.length > 0 || rows.some((r) => r.health !== 'healthy') ? EXIT.failed : EXIT.ok;
  } finally {
    await p.close();
  }
}
