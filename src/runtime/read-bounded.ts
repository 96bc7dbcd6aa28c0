import type { Stats } from 'node:fs';
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * A regular file's bytes, undefined past `limit` (read in chunks: it may grow while read), or what it is
 * when it is no regular file (`specialFileKind`), never read: opened without waiting, as a FIFO with no
 * writer would wait forever (in libuv's thread pool, where no signal ends the wait), and a device such as
 * `/dev/zero` never ends. Throws what opening it throws (ENOENT: nothing there).
 */
export async function readAtMost(path: string, limit: number): Promise<Buffer | undefined | { readonly special: string }> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { special: specialFileKind(info) };
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const { bytesRead, buffer } = await handle.read({ buffer: Buffer.alloc(64 * 1024) });
      if (bytesRead === 0) return Buffer.concat(chunks, total);
      total += bytesRead;
      if (total > limit) return undefined;
      chunks.push(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
}

/** What a path that is not a regular file is, for messages: "a directory", "a FIFO" … */
export function specialFileKind(info: Stats): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  return 'a special file';
}

/**
 * The bytes of the file at `path` (its first `limit` only, when given), or what it is when it is no regular
 * file (`specialFileKind`), never read. Opened without waiting: a FIFO where a file should be would wait
 * for a writer forever. Throws what opening it throws (ENOENT: nothing there).
 */
export function readRegularSync(path: string, limit?: number): Buffer | { readonly special: string } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) return { special: specialFileKind(info) };
    if (limit === undefined) return readFileSync(fd);
    const head = Buffer.alloc(limit);
    return head.subarray(0, readSync(fd, head, 0, limit, 0));
  } finally {
    closeSync(fd);
  }
}
