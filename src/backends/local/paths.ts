import { isAbsolute, normalize, posix, relative, resolve, sep } from 'node:path';
import { escapesRoot } from './errors.ts';

/** True when `p` is `root` or below it (both absolute and normalised). */
export function isWithin(root: string, p: string): boolean {
  if (p === root) return true;
  return p.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * A relative path in normal form: segments that are neither empty, `.` nor
 * `..` (`a/b/c`). Such a path is its own normal form and stays inside any
 * root, so the string work of `normalize`, `resolve` and `relative` can be
 * skipped for it; most node paths are like this.
 */
export const PLAIN_PATH = /^(?!\.\.?(?:\/|$))[^/]+(?:\/(?!\.\.?(?:\/|$))[^/]+)*$/;

/** A node path in normal form (`./a//b/` is `a/b`): one resource, one text. */
export function normalPath(path: string): string {
  return posix.normalize(path).replace(/(.)\/+$/, '$1');
}

/**
 * Why a node path leaves the backend root (or names the root itself), from
 * its text alone, or undefined. The same answer whatever the root: goal
 * compilation asks it without knowing where the root will be, and must
 * refuse exactly what the backend will.
 */
export function lexicalEscape(relPath: string): string | undefined {
  if (PLAIN_PATH.test(relPath)) return undefined;
  if (isAbsolute(relPath)) return 'absolute paths are not allowed';
  const n = normalize(relPath);
  if (n === '.' || n === `.${sep}`) return 'it names the root itself';
  // Also when the `..` come back in (`../root/x`): whether they do depends on where the root is.
  if (n === '..' || n.startsWith(`..${sep}`)) return '".." climbs out of the root';
  return undefined;
}

/**
 * The lexical half of confinement (no I/O): refuses what `lexicalEscape`
 * does. Returns the absolute path. Symlinks are checked by the client
 * against the real filesystem.
 */
export function lexicalPath(root: string, relPath: string): string {
  const why = lexicalEscape(relPath);
  if (why !== undefined) throw escapesRoot(relPath, why);
  return resolve(root, relPath);
}

/**
 * A node path in normal form relative to `root` (`lexicalPath`'s refusals included): most are plain
 * already, and are then the very string given (no string work, and one object pass after pass).
 */
export function rootRelative(root: string, relPath: string): string {
  return PLAIN_PATH.test(relPath) ? relPath : relative(root, lexicalPath(root, relPath));
}

/** The bits a node's `mode` manages: permissions, and setuid, setgid and sticky. */
export const MODE_BITS = 0o7777;

/** "0644", "644" or "2775" → 0o644, 0o644, 0o2775. The schema has already checked the digits. */
export function parseMode(mode: string): number {
  return Number.parseInt(mode, 8) & MODE_BITS;
}

/** A stat mode → "0644", "2775" (the bits `mode` manages; not the file type). */
export function formatMode(bits: number): string {
  return (bits & MODE_BITS).toString(8).padStart(4, '0');
}

/** Whether a mode (a stat's, or a parsed one) differs from the desired one in the bits `mode` manages; the file type never counts. */
export function modeDiffers(actual: number, desired: number): boolean {
  return (actual & MODE_BITS) !== (desired & MODE_BITS);
}
