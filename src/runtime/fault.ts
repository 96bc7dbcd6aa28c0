/**
 * How a failure is classified, once, at the backend boundary. The fault
 * policy reads only the class (and the retry-after hint).
 */
export const FAULT_CLASSES = ['transient', 'throttled', 'auth', 'permanent', 'unknown'] as const;
export type FaultClass = (typeof FAULT_CLASSES)[number];

/** A classified failure of one operation on one node. Plain data: it is stored and logged. */
export interface Fault {
  readonly class: FaultClass;
  readonly message: string;
  /** A backend-specific code (SQLSTATE, errno, exit status …). */
  readonly code?: string | undefined;
  /** For `throttled`: the backend's hint of when to try again. */
  readonly retryAfterMs?: number | undefined;
  /** What an operator can do about it. */
  readonly hint?: string | undefined;
  /**
   * Set on a create that was stopped after it began (killed at its timeout, aborted, killed by a
   * signal), or that said it succeeded without a readable answer: whether it made something is
   * unknown, as after a crash. Its operation stays pending,
   * so the next observation is told the create was interrupted (`OperationContext.interrupted`).
   */
  readonly cutShort?: true | undefined;
  /**
   * Set on a fault that says nothing of the backend's health, so that no circuit breaker counts it,
   * whatever its class; the value says why (`NotTheBackend`).
   */
  readonly notTheBackend?: NotTheBackend | undefined;
}

/**
 * Why a fault says nothing of the backend (`Fault.notTheBackend`). `before-call`: raised before any
 * backend was called for the operation (a `${nodes…}` reference whose value is not there yet, a backend
 * that is not configured, a pass stopped before the call). `node-only`: set by a backend on a fault about
 * this node's own resource alone (local: its path leads out of the root through a symlink made by hand,
 * or changed kind while it was being used, or an errno refused that path alone: a directory it may not
 * enter, an immutable file); many nodes under one such path fail together, each on its
 * own backoff, and must not take the backend's other nodes down with them. `declaration`: raised before
 * any call too, because the goals as declared forbid the operation (`byDeclaration`).
 */
export type NotTheBackend = 'before-call' | 'node-only' | 'declaration';

/**
 * Whether `f` refuses an operation for how the goals declare it (`NotTheBackend`: `declaration`, a delete
 * whose backend now points elsewhere): a condition of the declaration, not a fault of the resource. Only a
 * change of the declaration ends it, so it neither spends the node's retry budget nor holds it; the
 * operation is tried again at the next goal load (and apply), and goes through once the declaration allows it.
 */
export function byDeclaration(f: Fault): boolean {
  return f.notTheBackend === 'declaration';
}

/** Whether `f` failed an operation before it reached the backend (`before-call`): nothing of it can be there. */
export function neverSent(f: Fault): boolean {
  return f.notTheBackend === 'before-call';
}

/** Whether a create's result leaves it cut short (see `Fault.cutShort`): its operation then stays pending. */
export function createCutShort(op: 'create' | 'update' | 'delete', result: { readonly status: string; readonly fault?: Fault }): boolean {
  return op === 'create' && result.status === 'failed' && result.fault?.cutShort === true;
}

/**
 * Thrown by backends (and anything under them) to carry a classified fault.
 * The dispatcher turns it into a `{ status: 'failed', fault }` result; any
 * other thrown value becomes an `unknown` fault.
 */
export class FaultError extends Error {
  readonly fault: Fault;
  constructor(fault: Fault, options: { cause?: unknown } = {}) {
    super(fault.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FaultError';
    this.fault = fault;
  }
}

export function fault(cls: FaultClass, message: string, extra: Omit<Fault, 'class' | 'message'> = {}): Fault {
  return { class: cls, message, ...extra };
}

/** A fault from anything thrown: a `FaultError` keeps its class, an abort is transient, the rest is unknown. */
export function toFault(err: unknown): Fault {
  if (err instanceof FaultError) return err.fault;
  if (err instanceof Error && err.name === 'AbortError') return fault('transient', 'operation aborted');
  return fault('unknown', err instanceof Error ? err.message : String(err));
}
