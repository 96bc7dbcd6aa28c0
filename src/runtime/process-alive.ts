/**
 * Whether process `pid` exists: one of another user's counts (EPERM), a zombie too (see
 * `SqliteStateStore.lockHolder` for telling those apart).
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
