import type { Logger } from 'pino';
import { resolveSecret } from '../../infra/index.ts';
import type { BackendContext, BackendHealth, BackendNode, BackendUpdate, InfraBackend } from '../../infra/index.ts';
import { fault, FaultError, KeyedSerializer } from '../../runtime/index.ts';
import type { FieldDiff, NodeId, Observation, OperationContext, ProvisionResult } from '../../runtime/index.ts';
import { Borrower } from './borrowed-roles.ts';
import { PgClient } from './client.ts';
import type { PostgresConfig } from './config.ts';
import { databaseHandler } from './database.ts';
import { extensionHandler } from './extension.ts';
import { classifyPgError, isDuplicate } from './faults.ts';
import { grantHandler } from './grant.ts';
import { isPostgresKind } from './kind.ts';
import type { KindContext, KindHandler, PgNode, PostgresKind, Provisioned } from './kind.ts';
import { roleHandler } from './role.ts';
import { schemaHandler } from './schema.ts';

type Handlers = { readonly [T in PostgresKind]: KindHandler<T> };
type Operation = 'create' | 'update' | 'delete';

/**
 * A `postgres` backend instance: databases, roles, schemas, grants and
 * extensions on one server. Observes each kind with one catalog query per
 * database for all its nodes; never throws from an SPI call (failures are
 * classified results); connects lazily.
 */
export class PostgresBackend implements InfraBackend {
  readonly id: string;
  readonly type = 'postgres';
  private readonly client: PgClient;
  private readonly ctx: BackendContext;
  private readonly roles = roleHandler();
  private readonly handlers: Handlers;
  private readonly privileges = new KeyedSerializer();
  private readonly borrower = new Borrower();
  /** The role the backend connects as, and the password it connects with. */
  private readonly user: string;
  private readonly userPassword: PostgresConfig['password'];

  /** `client`: where the backend's queries go (by default a `PgClient` on `config`'s server). */
  constructor(config: PostgresConfig, ctx: BackendContext, client = new PgClient({ config, env: ctx.env, cwd: ctx.cwd, log: ctx.log })) {
    this.id = ctx.id;
    this.ctx = ctx;
    this.client = client;
    this.user = config.user;
    this.userPassword = config.password;
    this.handlers = {
      'postgres.database': databaseHandler,
      'postgres.role': this.roles,
      'postgres.schema': schemaHandler,
      'postgres.grant': grantHandler,
      'postgres.extension': extensionHandler,
    } satisfies Handlers;
  }

  /** {@inheritDoc InfraBackend.observe} One query per kind (per database for per-database kinds). */
  async observe(nodes: readonly BackendNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>> {
    const out = new Map<NodeId, Observation>();
    const groups = new Map<PostgresKind, PgNode[]>();
    for (const node of nodes) {
      const pg = this.pgNode(node);
      if (pg === undefined) {
        out.set(node.id, { status: 'failed', fault: unsupported(node) });
        continue;
      }
      let g = groups.get(pg.spec.type);
      if (g === undefined) groups.set(pg.spec.type, (g = []));
      g.push(pg);
    }
    const kctx = this.kindContext(ctx);
    await Promise.all(
      [...groups].map(async ([kind, group]) => {
        try {
          const observed = await this.handler(kind).observe(group, kctx);
          for (const n of group) out.set(n.id, observed.get(n.id) ?? { status: 'failed', fault: fault('unknown', 'no observation returned') });
        } catch (err) {
          const f = classifyPgError(err);
          ctx.log.warn({ kind, class: f.class, code: f.code, nodes: group.length }, 'observe failed');
          for (const n of group) out.set(n.id, { status: 'failed', fault: f });
        }
      }),
    );
    return out;
  }

  /** {@inheritDoc InfraBackend.create} One round trip where PostgreSQL allows; an existing object is adopted and updated to desired. */
  create(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult> {
    return this.provision('create', node, ctx, async (h, n, k) => {
      try {
        return await h.create(n, k);
      } catch (err) {
        if (!isDuplicate(err)) throw err;
        ctx.log.info({ node: n.id, kind: n.spec.type }, 'already exists; adopting');
        return this.adopt(h, n, k);
      }
    });
  }

  /** {@inheritDoc InfraBackend.update} */
  update(node: BackendNode, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult> {
    return this.provision('update', node, ctx, (h, n, k) => h.update(n, diffs, k));
  }

  /** {@inheritDoc InfraBackend.delete} Only what the node names; stateful kinds refuse to drop data without `force`. */
  delete(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult> {
    return this.provision('delete', node, ctx, async (h, n, k) => {
      await h.delete(n, k);
      return { outputs: {} };
    });
  }

  /**
   * Batch fast path for roles: creates every role in one transaction and
   * one round trip. If the batch fails (for example one role already
   * exists), falls back to one create per role, so each node still gets its
   * own result.
   */
  createMany(nodes: readonly BackendNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    return this.rolesInOneTransaction(
      'create',
      nodes.map((node) => ({ node, diffs: [] })),
      ctx,
      (roles, k) => this.roles.createMany(roles.map((r) => r.node), k),
      (i) => this.create(i.node, ctx),
    );
  }

  /** `createMany`'s fast path for repairs: every role's correction in one transaction (one commit, not one per role). */
  updateMany(items: readonly BackendUpdate[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    return this.rolesInOneTransaction(
      'update',
      items,
      ctx,
      (roles, k) => this.roles.updateMany(roles, k),
      (i) => this.update(i.node, i.diffs, ctx),
    );
  }

  /** The roles among `items` through `batch` (one by one through `single` if it fails), every other node through `single`. */
  private async rolesInOneTransaction(
    op: 'create' | 'update',
    items: readonly BackendUpdate[],
    ctx: OperationContext,
    batch: (roles: { node: PgNode<'postgres.role'>; diffs: readonly FieldDiff[] }[], k: KindContext) => Promise<ReadonlyMap<NodeId, Provisioned>>,
    single: (item: BackendUpdate) => Promise<ProvisionResult>,
  ): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    const out = new Map<NodeId, ProvisionResult>();
    const roles: { node: PgNode<'postgres.role'>; diffs: readonly FieldDiff[]; item: BackendUpdate }[] = [];
    const others: BackendUpdate[] = [];
    for (const item of items) {
      const pg = this.pgNode(item.node);
      if (pg !== undefined && pg.spec.type === 'postgres.role') roles.push({ node: pg as PgNode<'postgres.role'>, diffs: item.diffs, item });
      else others.push(item);
    }
    if (roles.length > 0) {
      try {
        const done = await this.ordered(
          roles.map((r) => r.node.spec.name),
          ctx.signal,
          () => batch(roles, this.kindContext(ctx)),
        );
        for (const [id, made] of done) out.set(id, { status: 'done', ...made });
        ctx.log.info({ kind: 'postgres.role', op, nodes: roles.length }, 'provisioned in one transaction');
      } catch (err) {
        const f = classifyPgError(err);
        ctx.log.info({ kind: 'postgres.role', op, nodes: roles.length, code: f.code }, 'batch failed; going one by one');
        await Promise.all(roles.map(async (r) => out.set(r.node.id, await single(r.item))));
      }
    }
    await Promise.all(others.map(async (i) => out.set(i.node.id, await single(i))));
    return out;
  }

  /** {@inheritDoc InfraBackend.health} */
  async health(ctx: { signal: AbortSignal; log: Logger }): Promise<BackendHealth> {
    try {
      await this.client.query('SELECT 1', [], { signal: ctx.signal });
      return { status: 'healthy' };
    } catch (err) {
      return { status: 'unhealthy', message: classifyPgError(err).message };
    }
  }

  /** {@inheritDoc InfraBackend.close} */
  close(): Promise<void> {
    return this.client.close();
  }

  /** An existing object found by create: observe it and bring it to desired. */
  private async adopt(h: KindHandler<PostgresKind>, n: PgNode, k: KindContext): Promise<Provisioned> {
    const obs = (await h.observe([n], k)).get(n.id);
    const status = obs?.status ?? 'indeterminate';
    switch (obs?.status) {
      case 'upToDate':
        return { outputs: obs.outputs, memo: obs.memo };
      case 'drifted':
        // The update is handed this observation's memo, as the runtime hands it the one that found the drift.
        return h.update(n, obs.diffs, { ...k, memoOf: (id) => (id === n.id ? obs.memo : k.memoOf(id)) });
      case 'failed':
        throw new FaultError(obs.fault);
      case 'absent':
      case 'indeterminate':
      case undefined:
        throw new FaultError(fault('transient', `reported as existing, then observed ${status}`, { code: 'race' }));
      default:
        return obs satisfies never;
    }
  }

  private async provision(
    op: Operation,
    node: BackendNode,
    ctx: OperationContext,
    run: (h: KindHandler<PostgresKind>, n: PgNode, k: KindContext) => Promise<Provisioned>,
  ): Promise<ProvisionResult> {
    const pg = this.pgNode(node);
    if (pg === undefined) return { status: 'failed', fault: unsupported(node) };
    try {
      const go = (): Promise<Provisioned> => run(this.handler(pg.spec.type), pg, this.kindContext(ctx));
      // Two GRANTs on one object from two sessions update the same ACL row: PostgreSQL fails one
      // with "tuple concurrently updated". Privilege changes within a database go one at a time.
      const made = await this.ordered(pg.spec.type === 'postgres.role' ? [pg.spec.name] : [], ctx.signal, () => (pg.spec.type === 'postgres.grant' ? this.privileges.run(pg.spec.database, go) : go()));
      ctx.log.debug({ node: node.id, kind: pg.spec.type, op }, 'provisioned');
      return { status: 'done', ...made };
    } catch (err) {
      const f = classifyPgError(err);
      ctx.log.warn({ node: node.id, kind: pg.spec.type, op, class: f.class, code: f.code }, 'operation failed');
      return { status: 'failed', fault: f };
    }
  }

  /**
   * Runs an operation (on the roles `roles`, if any) in its order with borrowed roles (borrowed-roles.ts):
   * alone when it may change the backend user's own memberships.
   */
  private ordered<T>(roles: readonly string[], signal: AbortSignal, run: () => Promise<T>): Promise<T> {
    return roles.includes(this.user) ? this.borrower.changingMemberships(run, signal) : this.borrower.borrowing(run, signal);
  }

  /**
   * The handler for a kind. The map is typed per kind; TypeScript cannot
   * correlate a kind with its node type through a union, so the one cast
   * lives here.
   */
  private handler(kind: PostgresKind): KindHandler<PostgresKind> {
    return this.handlers[kind] as unknown as KindHandler<PostgresKind>;
  }

  private pgNode(node: BackendNode): PgNode | undefined {
    const spec = node.spec.spec;
    return isPostgresKind(spec.type) ? ({ id: node.id, spec } as PgNode) : undefined;
  }

  private kindContext(ctx: OperationContext): KindContext {
    return {
      client: this.client,
      borrower: this.borrower,
      signal: ctx.signal,
      log: ctx.log,
      outputsOf: ctx.outputsOf,
      memoOf: (id) => ctx.memoOf?.(id),
      user: this.user,
      userPassword: this.userPassword,
      now: Date.now,
      secret: (ref) => resolveSecret(ref, { env: this.ctx.env, cwd: this.ctx.cwd }),
    };
  }
}

function unsupported(node: BackendNode): ReturnType<typeof fault> {
  return fault('permanent', `the postgres backend does not provision ${node.spec.spec.type}`, { code: 'unsupported-type' });
}
