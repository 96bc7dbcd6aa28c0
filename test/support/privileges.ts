import { spawnSync } from 'node:child_process';
import type { SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Tests whose outcome depends on who runs them. CI and the development
 * machines run as root, where a chown to another user always succeeds: the
 * refusals an unprivileged daemon meets are tested in a child process that
 * drops to `nobody`, and the tests that need root say so loudly, never pass
 * silently, when they cannot run.
 */

/** Whether this process runs as root. */
export const isRoot = process.getuid?.() === 0;

/** The unprivileged user a root test drops to. */
export const NOBODY = { uid: 65534, gid: 65534 } as const;

const runtimeIndex = fileURLToPath(new URL('../../src/runtime/index.ts', import.meta.url));

/**
 * Whether a child process run as `nobody` can load this checkout's sources: false unless root,
 * and false for a checkout nobody cannot read (under a 0700 home, say). Probed once, on first use.
 */
export function canRunAsNobody(): boolean {
  if (!isRoot) return false;
  probed ??= spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(runtimeIndex).href)})`], { ...NOBODY, stdio: 'ignore', timeout: 60_000 }).status === 0;
  return probed;
}
let probed: boolean | undefined;

/**
 * Runs `node script ...args` as an unprivileged user: as `nobody` when this process is root
 * (callers check `canRunAsNobody()` first), as this process's own user otherwise.
 */
export function runUnprivileged(script: string, args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [script, ...args], { ...(isRoot ? NOBODY : {}), encoding: 'utf8', timeout: 60_000 });
}

/**
 * Sets or clears a path's immutable flag (chattr +i / -i), whose writes are then refused with EPERM even to
 * root: how a root test meets a per-path refusal. False where it cannot (not root, a filesystem without the flag).
 */
export function setImmutable(path: string, on: boolean): boolean {
  return spawnSync('chattr', [on ? '+i' : '-i', path], { stdio: 'ignore' }).status === 0;
}

/** Whether `setImmutable` works here, on a directory under tmpdir: probed once, on first use. */
export function canSetImmutable(): boolean {
  if (immutableProbed !== undefined) return immutableProbed;
  const dir = mkdtempSync(join(tmpdir(), 'ds-chattr-'));
  immutableProbed = setImmutable(dir, true) && setImmutable(dir, false);
  rmSync(dir, { recursive: true, force: true });
  return immutableProbed;
}
let immutableProbed: boolean | undefined;
