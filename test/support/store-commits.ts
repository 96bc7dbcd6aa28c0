import type { SqliteStateStore, StateStore } from '../../src/runtime/index.ts';

const WRITES = new Set(['startRun', 'finishRun', 'recordRunProgress', 'beginOperation', 'finishOperation', 'recordDrift', 'setDriftAction', 'putNodes', 'removeNodes', 'appendEvent', 'setMeta', 'pruneHistory']);

/**
 * The store, with a count of the commits made through it that write something:
 * top-level transactions with a write in them (an empty one writes nothing
 * to the WAL, so costs no fsync), and writes made outside any transaction
 * (each its own commit).
 */
export function counted(store: SqliteStateStore): { store: StateStore; commits: () => number; reset: () => void } {
  let depth = 0;
  let wrote = false;
  let commits = 0;
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (prop === 'transaction') {
        return <T>(fn: () => T): T => {
          if (depth === 0) wrote = false;
          depth++;
          try {
            return target.transaction(fn);
          } finally {
            depth--;
            if (depth === 0 && wrote) commits++;
          }
        };
      }
      if (typeof prop === 'string' && WRITES.has(prop)) {
        return (...args: unknown[]) => {
          if (depth === 0) commits++;
          else wrote = true;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return { store: proxy, commits: () => commits, reset: () => (commits = 0) };
}

/**
 * The store as a full disk leaves it: while `refuse()` says so, every write (each write method, and
 * any transaction) throws, and nothing of it is recorded; reads still answer.
 */
export function refusing(store: SqliteStateStore, refuse: () => boolean): StateStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      // Bound to the store itself: its #private fields are not the proxy's.
      const method = (value as (...a: unknown[]) => unknown).bind(target);
      if (prop !== 'transaction' && !(typeof prop === 'string' && WRITES.has(prop))) return method;
      return (...args: unknown[]) => {
        if (refuse()) throw new Error('database or disk is full');
        return method(...args);
      };
    },
  });
}
