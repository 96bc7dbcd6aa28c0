import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { FaultError, errorMessage, fault } from '../../runtime/index.ts';
import type { Fault, FaultClass } from '../../runtime/index.ts';

/** How each errno is classified; anything not listed is `unknown`. */
const errnoClasses: Readonly<Record<string, FaultClass>> = {
  EACCES: 'auth',
  EPERM: 'auth',
  ENOSPC: 'transient',
  EDQUOT: 'transient',
  ETXTBSY: 'transient',
  // Until it is remounted read-write: held after its retries, for an operator (desiredstate retry).
  EROFS: 'permanent',
  EFBIG: 'permanent',
  EIO: 'transient',
  EBUSY: 'transient',
  EAGAIN: 'transient',
  EMFILE: 'transient',
  ENFILE: 'transient',
  ENOTDIR: 'permanent',
  EISDIR: 'permanent',
  ELOOP: 'permanent',
  // A name or path longer than the filesystem allows: the goal must change, retrying cannot help.
  ENAMETOOLONG: 'permanent',
};

const errnoHints: Readonly<Record<string, string>> = {
  EACCES: 'check the permissions of the backend root and of the daemon user',
  EPERM: 'the file or its directory may be immutable or append-only (lsattr shows it, chattr -i or -a clears it), or a security policy refuses the change',
  ENOSPC: 'free disk space',
  EDQUOT: 'the owner\'s disk quota is used up: free space or raise the quota',
  ETXTBSY: 'the file is a program being run; it is replaced once it is no longer running',
  EROFS: 'the filesystem is mounted read-only: remount it read-write (mount -o remount,rw) or root the backend elsewhere, then desiredstate retry NODE',
  EFBIG: 'the file is larger than the filesystem or the daemon\'s limit (ulimit -f) allows',
  EMFILE: 'the daemon has too many files open: raise its limit (ulimit -n, systemd LimitNOFILE) or lower --concurrency',
  ENFILE: 'the system has too many files open: raise fs.file-max or lower --concurrency',
  ENOTDIR: 'a path component is a file, not a directory',
  ELOOP: 'a symlink loop is in the path',
  ENAMETOOLONG: 'a name in the path is longer than 255 bytes (NAME_MAX) or the whole path longer than 4096 (PATH_MAX): shorten it',
};

/**
 * Errnos about the one path a call was given (`Fault.notTheBackend`: `node-only`): a directory on the way
 * the daemon's user may not enter or write in (EACCES), a file made immutable or a chown refused (EPERM), a
 * file where a directory should be (ENOTDIR, EISDIR), a loop of links, a name too long, a file too large or
 * being run. Any number of nodes under one such path fail together, each on its own backoff; counted, they
 * opened the circuit for every node of the backend, a hand edit elsewhere left uncorrected. What concerns
 * the backend as a whole stays counted: a full disk or quota (ENOSPC, EDQUOT), a read-only filesystem (EROFS),
 * failing I/O (EIO), the daemon out of file descriptors (EMFILE, ENFILE), and any of these errnos while the
 * root itself cannot be used (`aboutTheRoot`).
 */
const perPathErrnos: ReadonlySet<string> = new Set(['EACCES', 'EPERM', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG', 'EFBIG', 'ETXTBSY']);

export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/** The class of a filesystem error, once, at the backend boundary. */
export function classifyErrno(code: string | undefined): FaultClass {
  return (code !== undefined ? errnoClasses[code] : undefined) ?? 'unknown';
}

/** A chown (chown, fchown, lchown) refused: it needs privileges, where anything else refused (EPERM) is more likely a locked file. */
const CHOWN_HINT = 'changing owner or group needs privileges (run as root or drop owner/group)';

/** The call that failed: Node's `syscall`, else `action`. */
function syscallOf(err: unknown, action: string): string {
  return typeof err === 'object' && err !== null && 'syscall' in err && typeof err.syscall === 'string' ? err.syscall : action;
}

/** Wraps a filesystem error into a classified `FaultError`; a `FaultError` passes through. */
export function fsFault(err: unknown, action: string, path: string): FaultError {
  if (err instanceof FaultError) return err;
  const code = errnoOf(err);
  const hint = code === 'EPERM' && syscallOf(err, action).endsWith('chown') ? CHOWN_HINT : code !== undefined ? errnoHints[code] : undefined;
  return new FaultError(
    fault(classifyErrno(code), `${action} ${path} failed: ${code ?? errorMessage(err)}`, {
      ...(code === undefined ? {} : { code }),
      ...(hint === undefined ? {} : { hint }),
      ...(code !== undefined && perPathErrnos.has(code) ? { notTheBackend: 'node-only' as const } : {}),
    }),
    { cause: err },
  );
}

/**
 * A fault as the backend gives it: one `fsFault` took for its path's alone (`perPathErrnos`) is about the
 * backend after all while its root is not a directory the daemon may list, enter and write in (missing,
 * unreadable, immutable): every node fails for the same reason, and its circuit breaker counts them.
 * Looked at only once a node has failed so, never on the way of a healthy node.
 */
export function aboutTheRoot(f: Fault, root: string): Fault {
  if (f.notTheBackend !== 'node-only' || f.code === undefined || !perPathErrnos.has(f.code)) return f;
  try {
    if (statSync(root).isDirectory()) {
      accessSync(root, fsConstants.R_OK | fsConstants.W_OK | fsConstants.X_OK);
      return f;
    }
  } catch {
    // Not usable: the fault is the backend's.
  }
  const { notTheBackend: _, ...ofTheBackend } = f;
  return ofTheBackend;
}

/** The fault of a path (or a link target) that would leave the backend root; compile time reports it as a spec issue. */
export function escapesRootFault(path: string, why: string): Fault {
  return fault('permanent', `path ${path} escapes the backend root: ${why}`, {
    code: 'path-escapes-root',
    hint: 'paths are relative to the backend root and must stay inside it, symlinks included',
  });
}

/** A path (or a link target) that would leave the backend root. Nothing is written. */
export function escapesRoot(path: string, why: string): FaultError {
  return new FaultError(escapesRootFault(path, why));
}

/**
 * A path whose text stays in the root but that leads out of it through a symlink found on the way (one the
 * goals do not manage: made by hand, or a directory swapped for one): refused as an escape is, nothing read
 * or written there, but transient, since what the filesystem holds changes (the link removed, the
 * directory made again) and the next pass checks again. `path-escapes-root`, permanent, is for what the
 * goal's own text says.
 */
export function leadsOutOfRoot(path: string, why: string): FaultError {
  return pathChanged(
    `path ${path} leads out of the backend root: ${why}; nothing was read or written there`,
    'a symlink the goals do not manage leads out of the root: remove it (or point it inside the root); the next pass checks the path again',
  );
}

/**
 * The fault of a node's path that something else changed (`path-changed`): transient, looked at again
 * next pass, and about that path alone (`Fault.notTheBackend`: `node-only`): however many nodes lie under it, no circuit
 * breaker counts it against the backend, whose other nodes go on.
 */
export function pathChanged(message: string, hint: string, cause?: unknown): FaultError {
  return new FaultError(fault('transient', message, { code: 'path-changed', hint, notTheBackend: 'node-only' }), cause === undefined ? {} : { cause });
}

/**
 * A link whose target leads round a loop of symlinks (back to the link itself, or through links there
 * already), or through more than the kernel follows: symlink() would make it, and nothing could be
 * reached through it. Not made; `validate` refuses such a loop among the goals' own links.
 */
export function symlinkLoop(target: string, cause: unknown): FaultError {
  return new FaultError(
    fault('permanent', `symlink target ${target} leads round a loop of symlinks (or through more than the kernel follows, ELOOP): nothing could be reached through it; not made`, {
      code: 'symlink-loop',
      hint: 'point the link at a path that does not lead back to it, or remove the link on the way that makes the loop',
    }),
    { cause },
  );
}

/** Something of another kind sits where the node's resource should be. Never deleted to make room. */
export function wrongKind(path: string, found: string, wanted: string): FaultError {
  return new FaultError(
    fault('permanent', `${path} is a ${found}, not a ${wanted}; refusing to replace it`, {
      code: 'wrong-kind',
      hint: `remove or move the ${found} by hand if the ${wanted} should take its place`,
    }),
  );
}

/**
 * What a removed node's delete finds at its path in place of what the node made (put there by hand
 * since): never deleted, as nothing is to make room (`wrongKind`).
 */
export function wrongKindToDelete(path: string, found: string, made: string): FaultError {
  return new FaultError(
    fault('permanent', `${path} is a ${found}, not the ${made} the node made; refusing to delete it`, {
      code: 'wrong-kind',
      hint: `the ${found} was put there since: remove it by hand if it should go; to leave it, declare the node again with deletionPolicy: Orphan and remove it once more`,
    }),
  );
}

/** A directory whose delete finds it holding something (`holds`: a few of its names, where known): its contents are never deleted with it. */
export function directoryNotEmpty(path: string, holds?: readonly string[], cause?: unknown): FaultError {
  const shown = holds === undefined ? '' : ` (it holds ${holds.slice(0, 3).join(', ')}${holds.length > 3 ? ` and ${holds.length - 3} more` : ''})`;
  return new FaultError(
    fault('permanent', `directory ${path} is not empty${shown}; refusing to delete its contents`, {
      code: 'directory-not-empty',
      hint: 'remove from the goals the nodes that manage what it holds too, or empty it by hand; to keep it, declare it again with deletionPolicy: Orphan and remove it once more',
    }),
    cause === undefined ? {} : { cause },
  );
}

/** Thrown before a write when the operation's signal was aborted. */
export function aborted(action: string): FaultError {
  return new FaultError(fault('transient', `${action} aborted`, { code: 'aborted' }));
}
