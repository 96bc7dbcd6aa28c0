import { createHash } from 'node:crypto';
import { describeSecretRef, saltedDigestMatches, saltedSecretDigest, secretUnavailableFault } from '../../infra/index.ts';
import { fault } from '../../runtime/index.ts';
import type { Fault, FieldDiff, NodeId, Observation } from '../../runtime/index.ts';
import { dropped } from './kind.ts';
import type { KindContext, KindHandler, PgNode, Provisioned } from './kind.ts';
import { observeRole, PASSWORD_DIGEST, roleOutputs, roleRows } from './observe.ts';
import type { PasswordState, RoleRow } from './observe.ts';
import { scramVerifier, verifyPassword } from './scram.ts';
import {
  alterRoleSql,
  CAN_READ_VERIFIERS_QUERY,
  createRoleSql,
  dropRoleSql,
  grantMembershipSql,
  MEMBERSHIP_GRANTORS_QUERY,
  quoteLiteral,
  revokeMembershipSql,
  ROLE_ATTRIBUTE_FIELDS,
  rolesQuery,
  timestampMs,
} from './sql.ts';
import type { Statement } from './sql.ts';

type RoleNode = PgNode<'postgres.role'>;

/** The password state of a role whose spec manages none. */
const UNMANAGED: PasswordState = { status: 'unmanaged' };

/** The attributes whose loss would shut the backend out of the server, were they taken from the role it connects as. */
const SELF_LOCKING = ['superuser', 'login', 'createrole'] as const;

/**
 * A drifted observation of the role the backend connects as, failed when
 * its correction would take from that role what the backend needs to go on
 * (SUPERUSER, LOGIN, CREATEROLE): applied, the next connection or statement
 * is refused and every node of the backend is stuck until someone repairs
 * the role by hand. The goal is to state them, or leave the role to another
 * backend.
 */
function refuseSelfLockout(obs: Observation, node: RoleNode, ctx: Pick<KindContext, 'user' | 'userPassword' | 'now'>): Observation {
  if (obs.status !== 'drifted' || node.spec.name !== ctx.user) return obs;
  const lockout = (what: string, hint: string): Observation => ({
    status: 'failed',
    fault: fault('permanent', `correcting ${node.spec.name} would ${what} the role this backend connects as: it would shut itself out of the server`, { code: 'self-lockout', hint }),
  });
  // CREATEROLE is moot for a superuser.
  const lost = SELF_LOCKING.filter((f) => !(f === 'createrole' && node.spec.superuser) && obs.diffs.some((d) => d.path === f && d.desired === false && d.actual === true));
  if (lost.length > 0) {
    return lockout(`take ${lost.map((f) => f.toUpperCase()).join(', ')} from`, `state ${lost.map((f) => `${f}: true`).join(', ')} for this role in the goal, or manage it through a backend that connects as another role`);
  }
  // An expiry already past: the password the backend connects with is refused from the next connection.
  const until = node.spec.validUntil === undefined ? undefined : timestampMs(node.spec.validUntil);
  if (until !== undefined && until <= (ctx.now ?? Date.now)() && obs.diffs.some((d) => d.path === 'validUntil')) {
    return lockout(`set a validUntil already past (${node.spec.validUntil}) on`, 'give this role a validUntil in the future (or infinity), or manage it through a backend that connects as another role');
  }
  // Another password than the one the backend connects with (the stored one differs from the goal's, and
  // the backend got in with its own): the next connection is refused. The same reference for both is
  // the backend's own password, whatever the server holds now (trust or peer authentication).
  const password = node.spec.password;
  if (ctx.userPassword !== undefined && password !== undefined && obs.diffs.some((d) => d.path === 'password') && describeSecretRef(password) !== describeSecretRef(ctx.userPassword)) {
    return lockout(
      `set another password (${describeSecretRef(password)}) than the one it connects with (${describeSecretRef(ctx.userPassword)}) on`,
      "give this role's password and the backend's the same secret reference, or manage the role through a backend that connects as another role",
    );
  }
  return obs;
}

/** Verification results by (verifier, password) hash, so steady passes do not repeat PBKDF2. */
const MAX_VERIFY_CACHE = 20_000;

function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * The role handler; it keeps, per backend instance, whether verifiers are
 * readable and past verifications. A managed password's digest lives in the
 * node's memo (private: never shown, unlike outputs), returned by every
 * observation, create and update that knows it; never in outputs.
 */
export function roleHandler(): KindHandler<'postgres.role'> & {
  createMany(nodes: readonly RoleNode[], ctx: KindContext): Promise<ReadonlyMap<NodeId, Provisioned>>;
  updateMany(items: readonly { node: RoleNode; diffs: readonly FieldDiff[] }[], ctx: KindContext): Promise<ReadonlyMap<NodeId, Provisioned>>;
} {
  let readable: Promise<boolean> | undefined;
  const verified = new Map<string, boolean | undefined>();

  const canReadVerifiers = (ctx: KindContext): Promise<boolean> => {
    readable ??= ctx.client
      .query<{ readable: boolean }>(CAN_READ_VERIFIERS_QUERY, [], { signal: ctx.signal })
      .then((rows) => rows[0]?.readable === true)
      .catch((err: unknown) => {
        readable = undefined;
        throw err;
      });
    return readable;
  };

  const verify = async (secret: string, stored: string, role: string): Promise<boolean | undefined> => {
    const key = createHash('sha256').update(stored).update('\0').update(role).update('\0').update(secret).digest('hex');
    if (verified.has(key)) return verified.get(key);
    const ok = await verifyPassword(secret, stored, role);
    if (verified.size >= MAX_VERIFY_CACHE) verified.clear();
    verified.set(key, ok);
    return ok;
  };

  /**
   * The digest recorded for a node's password: the memo's, else the one
   * outputs held before digests moved to the memo. The outputs are read
   * whenever the memo has no digest, not once: an observation moves a
   * matching digest into the memo, but a password that differs, cannot be
   * verified or has no secret leaves the memo without one, and the legacy
   * outputs are consulted again on the next pass (until outputs recorded
   * since, which never carry a digest, replace them).
   */
  const recordedDigest = (id: NodeId, ctx: KindContext): string | undefined => text(ctx.memoOf(id)?.[PASSWORD_DIGEST]) ?? text(ctx.outputsOf(id)?.[PASSWORD_DIGEST]);

  /**
   * The password's state, or the fault that the secret cannot be read: the
   * role's observation fails with it (as its create would), so `plan` names
   * the node and the reference, rather than calling a password it never
   * compared in sync.
   */
  const passwordState = async (node: RoleNode, row: RoleRow | undefined, readVerifiers: boolean, ctx: KindContext): Promise<PasswordState | { status: 'unreadable'; fault: Fault }> => {
    const ref = node.spec.password;
    if (ref === undefined || row === undefined) return UNMANAGED;
    // Only for a managed password: most roles have none, and need no memo or outputs lookup.
    const recorded = recordedDigest(node.id, ctx);
    let secret: string;
    try {
      secret = await ctx.secret(ref);
    } catch (err) {
      const f = secretUnavailableFault(err);
      if (f === undefined) throw err;
      return { status: 'unreadable', fault: f };
    }
    const digest = saltedDigestMatches(recorded, secret) ? recorded : undefined;
    // The secret is not the one last set (its digest recorded then): rotated, a change of the desired
    // password. The secret last set but the role's password another: changed out of band, drift. With
    // no digest recorded (a role adopted, never set by us) nothing tells them apart: drift, as before.
    const differs: PasswordState = { status: 'differs', rotated: recorded !== undefined && digest === undefined, digest: recorded };
    if (readVerifiers) {
      if (row.verifier === null) return differs;
      const ok = await verify(secret, row.verifier, row.name);
      if (ok === true) return { status: 'matches', digest: digest ?? saltedSecretDigest(secret) };
      if (ok === false) return differs;
      // A verifier of a kind we cannot check: fall back to the recorded digest.
    }
    if (recorded === undefined) return { status: 'unknown' };
    return digest === undefined ? differs : { status: 'matches', digest };
  };

  /** The password verifier to send and the digest to record, when the role's password is to be set. */
  const preparePassword = async (node: RoleNode, ctx: KindContext): Promise<{ verifier: string; digest: string } | undefined> => {
    if (node.spec.password === undefined) return undefined;
    const secret = await ctx.secret(node.spec.password);
    return { verifier: await scramVerifier(secret), digest: saltedSecretDigest(secret) };
  };

  const oidQuery = (name: string): Statement => ({ text: `SELECT oid::int8 AS oid FROM pg_roles WHERE rolname = ${quoteLiteral(name)}` });

  /**
   * What a create or update made: outputs (name, oid), and for a managed
   * password the memo with its digest — the one just set, else the recorded
   * one carried over (a repair of another field must not lose it: the
   * runtime replaces the memo with the one an operation returns).
   */
  const provisioned = (node: RoleNode, row: Pick<RoleRow, 'oid'> | undefined, pwd: { digest: string } | undefined, ctx: KindContext): Provisioned => {
    const outputs = roleOutputs(node.spec, row);
    const digest = node.spec.password === undefined ? undefined : (pwd?.digest ?? recordedDigest(node.id, ctx));
    return digest === undefined ? { outputs } : { outputs, memo: { [PASSWORD_DIGEST]: digest } };
  };

  /**
   * The REVOKEs that end `role`'s memberships in `groups`: one per grantor
   * where the server keeps them per grantor (PostgreSQL 16 and later; a
   * membership granted out of band by another role would otherwise stay,
   * reported done and found again on every pass), a plain one otherwise.
   */
  const revokeMemberships = async (role: string, groups: readonly string[], ctx: KindContext): Promise<Statement[]> => {
    const rows = await ctx.client.query<{ role: string; grantor: string }>(MEMBERSHIP_GRANTORS_QUERY, [role, groups], { signal: ctx.signal });
    return groups.flatMap((g) => {
      const grantors = [...new Set(rows.filter((r) => r.role === g).map((r) => r.grantor))];
      return grantors.length === 0 ? [revokeMembershipSql(role, g)] : grantors.map((by) => revokeMembershipSql(role, g, by));
    });
  };

  /** The statements that correct `diffs` (attributes, password, memberships), and the password prepared for them. */
  const updateStatements = async (node: RoleNode, diffs: readonly FieldDiff[], ctx: KindContext): Promise<{ statements: Statement[]; pwd: { verifier: string; digest: string } | undefined }> => {
    const pwd = diffs.some((d) => d.path === 'password') ? await preparePassword(node, ctx) : undefined;
    const fields = ROLE_ATTRIBUTE_FIELDS.filter((f) => diffs.some((d) => d.path === f));
    const alter = alterRoleSql(node.spec, fields, pwd?.verifier);
    const statements: Statement[] = alter === undefined ? [] : [alter];
    const members = diffs.find((d) => d.path === 'memberOf');
    if (members !== undefined) {
      const actual = Array.isArray(members.actual) ? members.actual.filter((x): x is string => typeof x === 'string') : [];
      for (const g of node.spec.memberOf) if (!actual.includes(g)) statements.push(grantMembershipSql(node.spec.name, g));
      const leave = actual.filter((g) => !node.spec.memberOf.includes(g));
      if (leave.length > 0) statements.push(...(await revokeMemberships(node.spec.name, leave, ctx)));
    }
    // A membership whose options differ (ADMIN, INHERIT, SET: `membershipOptionDiffs`) is granted anew, in
    // the same transaction: every grant of it revoked, then one made as a create makes it (after the
    // ALTER ROLE above, so from PostgreSQL 16 it takes the role's INHERIT as the goal has it).
    const regrant = node.spec.memberOf.filter((g) => ['admin', 'inherit', 'set'].some((o) => diffs.some((d) => d.path === `memberOf.${g}.${o}`)));
    if (regrant.length > 0) {
      statements.push(...(await revokeMemberships(node.spec.name, regrant, ctx)));
      for (const g of regrant) statements.push(grantMembershipSql(node.spec.name, g));
    }
    return { statements, pwd };
  };

  /** Runs a batch's statements and one query for every role's oid, in one round trip and one transaction; outputs and memo per node. */
  const inOneTransaction = async (
    prepared: readonly { node: RoleNode; pwd: { digest: string } | undefined }[],
    statements: Statement[],
    ctx: KindContext,
  ): Promise<ReadonlyMap<NodeId, Provisioned>> => {
    const names = [...new Set(prepared.map((p) => quoteLiteral(p.node.spec.name)))];
    statements.push({ text: `SELECT rolname AS name, oid::int8 AS oid FROM pg_roles WHERE rolname IN (${names.join(', ')})` });
    const rows = await ctx.client.execute(statements, { signal: ctx.signal });
    const byName = new Map((rows as Pick<RoleRow, 'name' | 'oid'>[]).map((r) => [r.name, r]));
    const out = new Map<NodeId, Provisioned>();
    for (const { node, pwd } of prepared) out.set(node.id, provisioned(node, byName.get(node.spec.name), pwd, ctx));
    return out;
  };

  return {
    async observe(nodes, ctx) {
      const names = [...new Set(nodes.map((n) => n.spec.name))];
      const withPassword = [...new Set(nodes.filter((n) => n.spec.password !== undefined).map((n) => n.spec.name))];
      // Verifiers are read only for managed passwords: without any, no round trip to ask whether they can be.
      const readVerifiers = withPassword.length > 0 && (await canReadVerifiers(ctx));
      const [result] = await ctx.client.query<{ roles: unknown }>(rolesQuery(readVerifiers), readVerifiers ? [names, withPassword] : [names], { signal: ctx.signal });
      const byName = new Map(roleRows(result?.roles).map((r) => [r.name, r]));
      // Most roles have no managed password: observed at once, without a promise each.
      const observed: Observation[] = [];
      const checks: Promise<void>[] = [];
      for (const [i, n] of nodes.entries()) {
        const row = byName.get(n.spec.name);
        if (n.spec.password === undefined || row === undefined) observed[i] = observeRole(n.spec, row, UNMANAGED);
        else checks.push(passwordState(n, row, readVerifiers, ctx).then((password) => void (observed[i] = password.status === 'unreadable' ? { status: 'failed', fault: password.fault } : observeRole(n.spec, row, password))));
      }
      await Promise.all(checks);
      return new Map(nodes.map((n, i) => [n.id, refuseSelfLockout(observed[i]!, n, ctx)]));
    },

    async create(node, ctx) {
      const pwd = await preparePassword(node, ctx);
      const rows = await ctx.client.execute([createRoleSql(node.spec, pwd?.verifier), oidQuery(node.spec.name)], { signal: ctx.signal });
      return provisioned(node, rows[0] as Pick<RoleRow, 'oid'> | undefined, pwd, ctx);
    },

    async update(node, diffs, ctx) {
      const { statements, pwd } = await updateStatements(node, diffs, ctx);
      // One round trip, one implicit transaction.
      const rows = await ctx.client.execute([...statements, oidQuery(node.spec.name)], { signal: ctx.signal });
      return provisioned(node, rows[0] as Pick<RoleRow, 'oid'> | undefined, pwd, ctx);
    },

    async delete(node, ctx) {
      await dropped(['42704'], () => ctx.client.execute([dropRoleSql(node.spec.name)], { signal: ctx.signal }));
    },

    /**
     * The batch fast path: every role in one transaction and one round trip
     * (memberships after all creates, so order within the batch does not
     * matter). All or nothing: on any failure it throws and nothing exists.
     */
    async createMany(nodes, ctx) {
      const prepared = await Promise.all(nodes.map(async (n) => ({ node: n, pwd: await preparePassword(n, ctx) })));
      const statements: Statement[] = prepared.map((p) => createRoleSql(p.node.spec, p.pwd?.verifier, { memberships: false }));
      for (const { node } of prepared) for (const g of node.spec.memberOf) statements.push(grantMembershipSql(node.spec.name, g));
      return inOneTransaction(prepared, statements, ctx);
    },

    /** `update` for many roles: every correction in one transaction and one round trip; all or nothing. */
    async updateMany(items, ctx) {
      const prepared = await Promise.all(items.map(async (i) => ({ node: i.node, ...(await updateStatements(i.node, i.diffs, ctx)) })));
      return inOneTransaction(
        prepared,
        prepared.flatMap((p) => p.statements),
        ctx,
      );
    },
  };
}
