import type { Stats } from 'node:fs';
import { closeSync, constants, createReadStream, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { Socket } from 'node:net';

/**
 * A regular file's bytes, undefined past `limit` (read in chunks: it may grow while read), or what it is
 * when it is no regular file (`specialFileKind`), never read: opened without waiting, as a FIFO with no
 * writer would wait forever (in libuv's thread pool, where no signal ends the wait), and a device such as
 * `/dev/zero` never ends. With `pipes`, a FIFO is read too (a `<(…)` on a command line), as a socket
 * that waits for its writer in the event loop, where a signal still ends the process.
 * Throws what opening it throws (ENOENT: nothing there).
 */
export async function readAtMost(path: string, limit: number, options: { pipes?: boolean } = {}): Promise<Buffer | undefined | { readonly special: string }> {
  const { fd, info } = openWithoutWaiting(path);
  if (info.isFile()) return chunksUpTo(createReadStream('', { fd }), limit);
  if (info.isFIFO() && options.pipes === true) return chunksUpTo(new Socket({ fd, readable: true, writable: false }), limit);
  closeSync(fd);
  return { special: specialFileKind(info) };
}

/** The bytes `source` gives to its end, or undefined once they pass `limit` (it is then left unread). */
async function chunksUpTo(source: AsyncIterable<Buffer> & { destroy(): void }, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of source) {
      total += chunk.byteLength;
      if (total > limit) return undefined;
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, total);
  } finally {
    source.destroy();
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
  const { fd, info } = openWithoutWaiting(path);
  try {
    if (!info.isFile()) return { special: specialFileKind(info) };
    if (limit === undefined) return readFileSync(fd);
    const head = Buffer.alloc(limit);
    return head.subarray(0, readSync(fd, head, 0, limit, 0));
  } finally {
    closeSync(fd);
  }
}

/** `path` opened for reading without waiting for a FIFO's writer, with what it is; closed again when that cannot be told. */
function openWithoutWaiting(path: string): { fd: number; info: Stats } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    return { fd, info: fstatSync(fd) };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
