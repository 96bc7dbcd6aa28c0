import { renameSync, unlinkSync } from 'node:fs';

/**
 * Makes the file at `path` anew, atomically: `write` fills a temp file
 * beside it (this process's own name), renamed over it, so that a reader
 * sees the old file or the new one, never half of one. A failure leaves no
 * temp file behind and throws.
 */
export function replaceFile(path: string, write: (tmp: string) => void): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    write(tmp);
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing was made.
    }
    throw err;
  }
}
