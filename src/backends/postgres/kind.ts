import type { Logger } from 'pino';
import type { InfraNodeSpecOf, SecretRef } from '../../infra/index.ts';
import { toFault } from '../../runtime/index.ts';
import type { FieldDiff, NodeId, Observation, ObservationMemo, Outputs, ProvisionResult } from '../../runtime/index.ts';
import type { Borrower } from './borrowed-roles.ts';
import type { PgClient } from './client.ts';
import { classifyPgError, sqlState } from './faults.ts';

/** The node types this backend provisions. */
export const POSTGRES_KINDS = ['postgres.database', 'postgres.role', 'postgres.schema', 'postgres.grant', 'postgres.extension'] as const;
export type PostgresKind = (typeof POSTGRES_KINDS)[number];

export function isPostgresKind(t: string): t is PostgresKind {
  return (POSTGRES_KINDS as readonly string[]).includes(t);
}

/** A node as a kind handler sees it: its id and its (resolved) resource spec. */
export interface PgNode<T extends PostgresKind = PostgresKind> {
  readonly id: NodeId;
  readonly spec: InfraNodeSpecOf<T>;
}

/** What a kind handler gets for one call. */
export interface KindContext {
  readonly client: PgClient;
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Outputs recorded for a node at its last create / update / observe. */
  readonly outputsOf: (id: NodeId) => Outputs | undefined;
  /** The memo of a node's last observation (or last create or update), if recorded. */
  readonly memoOf: (id: NodeId) => ObservationMemo | undefined;
  /** Reads a secret's value; throws a coded error naming the reference, never the value. */
  readonly secret: (ref: SecretRef) => Promise<string>;
  /** The backend's state for borrowed roles (borrowed-roles.ts). */
  readonly borrower: Borrower;
  /** The role the backend connects as (`config.user`). */
  readonly user: string;
  /** The password it connects with (`config.password`), if one: a goal setting that role another one shuts the backend out. */
  readonly userPassword?: SecretRef | undefined;
  /** Now, epoch ms: a `validUntil` before it shuts the role out. */
  readonly now?: () => number;
}

/** What a create or update made: the runtime's `done` result without its status (outputs, and the private memo; none clears it). */
export type Provisioned = Omit<Extract<ProvisionResult, { status: 'done' }>, 'status'>;

/**
 * The four operations for one kind. Each may throw a `FaultError`; the
 * backend turns it into a failed result. `observe` makes one catalog query
 * per database for all the nodes it is given.
 */
export interface KindHandler<T extends PostgresKind> {
  observe(nodes: readonly PgNode<T>[], ctx: KindContext): Promise<ReadonlyMap<NodeId, Observation>>;
  /** Creates with one round trip where PostgreSQL allows; "already exists" throws a duplicate fault (the backend adopts it). */
  create(node: PgNode<T>, ctx: KindContext): Promise<Provisioned>;
  update(node: PgNode<T>, diffs: readonly FieldDiff[], ctx: KindContext): Promise<Provisioned>;
  /** Absent is success. */
  delete(node: PgNode<T>, ctx: KindContext): Promise<void>;
}

/**
 * Runs `observe` once per database (in parallel) for nodes that live in
 * one. A database that does not exist yet holds nothing: its nodes are
 * absent. Any other failure fails only that database's nodes.
 */
export async function observeByDatabase<N extends { readonly id: NodeId; readonly spec: { readonly type: string; readonly database: string } }>(
  nodes: readonly N[],
  ctx: KindContext,
  observe: (database: string, nodes: readonly N[]) => Promise<ReadonlyMap<NodeId, Observation>>,
): Promise<ReadonlyMap<NodeId, Observation>> {
  const groups = new Map<string, N[]>();
  for (const n of nodes) {
    const db = n.spec.database;
    let g = groups.get(db);
    if (g === undefined) groups.set(db, (g = []));
    g.push(n);
  }
  const out = new Map<NodeId, Observation>();
  await Promise.all(
    [...groups].map(async ([database, group]) => {
      try {
        for (const [id, obs] of await observe(database, group)) out.set(id, obs);
      } catch (err) {
        if (faultCode(err) === '3D000') {
          for (const n of group) out.set(n.id, { status: 'absent' });
          return;
        }
        const fault = classifyPgError(err);
        ctx.log.warn({ database, kind: group[0]!.spec.type, code: fault.code, nodes: group.length }, 'observe failed');
        for (const n of group) out.set(n.id, { status: 'failed', fault });
      }
    }),
  );
  return out;
}

/** The classified code of anything thrown (a FaultError's code, or a raw SQLSTATE). */
export function faultCode(err: unknown): string | undefined {
  return toFault(err).code ?? sqlState(err);
}

/**
 * Runs a drop: true when it dropped, false when PostgreSQL answered with one
 * of `goneCodes` (the object, or its schema or database, is already gone:
 * a delete of something absent is a success). Any other error is thrown.
 */
export async function dropped(goneCodes: readonly string[], drop: () => Promise<unknown>): Promise<boolean> {
  try {
    await drop();
    return true;
  } catch (err) {
    if (goneCodes.includes(faultCode(err) ?? '')) return false;
    throw err;
  }
}
