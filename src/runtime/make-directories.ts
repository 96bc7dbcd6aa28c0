import { mkdirSync, statSync } from 'node:fs';
import { access, constants, lstat, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p`: `dir` and the parents it lacks, each with `mode` (less the
 * umask). Used instead of `mkdir(dir, { recursive: true })`, which loops for
 * ever (a thread at 100 % CPU, deaf to signals) where a parent cannot be made
 * and `mkdir` answers ENOENT under one that exists: under /proc or /sys, say.
 * Here that is the error it is. One `stat` when `dir` is already there
 * (synchronous: a lookup in the kernel's cache, as the backends' lstat are).
 */
export function makeDirectories(dir: string, mode?: number): void {
  const missing: string[] = [];
  for (let p = resolve(dir); ; ) {
    try {
      if (!statSync(p).isDirectory()) throw notADirectory(p);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(p);
      const up = dirname(p);
      if (up === p) break;
      p = up;
    }
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
    } catch (err) {
      // Made meanwhile (by another process, or a concurrent create of a sibling): fine if a directory.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(d).isDirectory()) throw err;
    }
  }
}

function notADirectory(path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), { code: 'ENOTDIR', errno: -20, syscall: 'mkdir', path });
}

/**
 * Whether `dir` (or, when missing, its nearest existing ancestor) is writable: where `makeDirectories`
 * can make it and files can be written in it (a backend's root, its health). Followed through symlinks
 * (stat, not lstat): a root such as /srv -> /data/srv is written through, so it is healthy.
 */
export async function writableOrCreatable(dir: string): Promise<{ ok: true } | { ok: false; message: string }> {
  let current = dir;
  for (;;) {
    try {
      const st = await stat(current);
      if (!st.isDirectory()) return { ok: false, message: `${current} is not a directory` };
      await access(current, constants.W_OK);
      return { ok: true };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return { ok: false, message: `${current} is not writable: ${code ?? String(err)}` };
      // A dangling link is there all the same: nothing can be created in its place.
      if (await lstat(current).then(() => true, () => false)) return { ok: false, message: `${current} is a symlink to nothing` };
      const parent = dirname(current);
      if (parent === current) return { ok: false, message: `no existing ancestor of ${dir}` };
      current = parent;
    }
  }
}
