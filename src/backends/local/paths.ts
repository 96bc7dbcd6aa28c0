import { isAbsolute, resolve, sep } from 'node:path';
import { escapesRoot } from './errors.ts';

/** True when `p` is `root` or below it (both absolute and normalised). */
export function isWithin(root: string, p: string): boolean {
  if (p === root) return true;
  return p.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * The lexical half of confinement (no I/O): refuses absolute paths and paths
 * whose `..` climb out of `root`, and the root itself. Returns the absolute
 * path. Symlinks are checked by the client against the real filesystem.
 */
export function lexicalPath(root: string, relPath: string): string {
  if (isAbsolute(relPath)) throw escapesRoot(relPath, 'absolute paths are not allowed');
  const abs = resolve(root, relPath);
  if (abs === root) throw escapesRoot(relPath, 'it names the root itself');
  if (!isWithin(root, abs)) throw escapesRoot(relPath, '".." climbs out of the root');
  return abs;
}

/** "0644" or "644" → 0o644. The schema has already checked the digits. */
export function parseMode(mode: string): number {
  return Number.parseInt(mode, 8) & 0o7777;
}

/** 0o644 → "0644" (permission bits only). */
export function formatMode(bits: number): string {
  return `0${(bits & 0o777).toString(8).padStart(3, '0')}`;
}
