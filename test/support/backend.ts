import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { BackendContext } from '../../src/infra/index.ts';
import type { OperationContext, Outputs } from '../../src/runtime/index.ts';

/** What backend tests share: a silent logger, contexts, process checks. */
export const silentLog = pino({ level: 'silent' });

/** A pino logger writing JSON lines into `lines`, so tests can grep everything logged. */
export function captureLogger(): { log: Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log = pino({ level: 'trace' }, stream);
  return { log, lines, text: () => lines.join('') };
}

export function backendContext(id: string, cwd: string, env: NodeJS.ProcessEnv = process.env): BackendContext {
  return { id, cwd, log: silentLog, stateDir: cwd, env };
}

/** An operation context whose recorded outputs the test controls. */
export function opContext(recorded: Map<string, Outputs> = new Map(), signal: AbortSignal = new AbortController().signal): OperationContext {
  return { signal, log: silentLog, outputsOf: (id) => recorded.get(id) };
}

/** True while `pid` is a live process (a zombie waiting to be reaped counts as dead). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Polls `check` for at most `ms`; resolves with whether it came to hold. */
export async function holdsWithin(check: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}
