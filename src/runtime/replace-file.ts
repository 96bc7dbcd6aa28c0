import { randomBytes } from 'node:crypto';
import { renameSync, unlinkSync } from 'node:fs';

/**
 * Makes the file at `path` anew, atomically: `write` fills a temp file
 * beside it, renamed over it, so that a reader sees the old file or the new
 * one, never half of one. A failure leaves no temp file behind and throws.
 *
 * The temp file's name is this call's own (pid and random bytes): a pid
 * alone comes back (pid 1 in every restart of a container), and with it the
 * temp file a `kill -9` left, which a hard link (`write` making `tmp` a link
 * to another file) cannot be made over.
 */
export function replaceFile(path: string, write: (tmp: string) => void): void {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    write(tmp);
    renameSync(tmp, path);
  } finally {
    // Not there after a rename, but for a failure, or a rename between two links to one file, which
    // does nothing (POSIX), leaving both names: the file at `path` is already what was written.
    removeQuietly(tmp);
  }
}

/** Unlinks `path` if it is there (a temp file that will not be used); never throws. */
export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Nothing there, or not ours to remove.
  }
}
