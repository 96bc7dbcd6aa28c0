import { FaultError, Semaphore, toFault } from '../../runtime/index.ts';
import type { KindContext } from './kind.ts';
import { faultCode } from './kind.ts';
import { BORROW_QUERY, borrowRoleSql, grantMembershipSql, returnRoleSql, SUPERUSER_QUERY } from './sql.ts';
import type { Statement } from './sql.ts';

/**
 * The roles a statement acts as: those it names (an owner to give an object to, a `forRole`) and the
 * owners of the objects it changes, whose privileges (ownership, grant options, CREATE on a database
 * or schema) it needs.
 */
export interface ActingAs {
  readonly roles?: readonly (string | undefined)[];
  /** Databases, by name. */
  readonly databaseOwners?: readonly string[];
  /** Schemas of the connected database, by name. */
  readonly schemaOwners?: readonly (string | undefined)[];
  /** The relations of `kinds` (pg_class.relkind) in a schema of the connected database. */
  readonly relationOwners?: { readonly schema: string; readonly kinds: readonly string[] };
  /** Extensions of the connected database, by name. */
  readonly extensionOwners?: readonly string[];
}

/** What `borrowedRoles` found. */
interface Borrowing {
  /** Roles granted to the backend user for one transaction: `around` grants them first and revokes them last. */
  readonly roles: readonly string[];
  /** `statements` between the grants and their revokes, then `readBack` (read after, in the same transaction). */
  around(statements: readonly Statement[], readBack?: Statement): Statement[];
  /** Runs `run`; a refused privilege (42501) it throws gets a hint naming the memberships the backend user lacks and could not borrow. */
  explained<T>(run: () => Promise<T>): Promise<T>;
}

interface BorrowRow {
  readonly role: string;
  readonly me: string;
  readonly per_grant: boolean;
  readonly borrowable: boolean;
}

/**
 * The roles among `who` whose privileges the backend user lacks, and which of them it may borrow:
 * a user with CREATEROLE and CREATEDB but not SUPERUSER may create a database or schema for an owner,
 * grant on what that owner owns, or set its default privileges, only as a member of the owner
 * (PostgreSQL 16 and later ask for INHERIT and SET), and such a user may grant itself a role it
 * created (it holds ADMIN OPTION on it; before 16, CREATEROLE lets it grant any role but a
 * superuser). As Terraform's provider does, the membership is granted for the operation only: in the
 * same transaction as the statements, revoked before it commits, so that no other session (an
 * observation of the backend's own role among them) ever sees it, and a failure rolls it back.
 * Nothing is borrowed from a role the user already holds (a superuser holds them all), nor where the
 * grant would change a membership it holds already (its revoke would then end that too): those are
 * named by the hint of a refusal instead.
 */
export async function borrowedRoles(who: ActingAs, ctx: KindContext, database: string | undefined): Promise<Borrowing> {
  const named = (xs: readonly (string | undefined)[] | undefined): string[] => (xs ?? []).filter((x): x is string => x !== undefined);
  const roleNames = named(who.roles);
  const databaseOwners = who.databaseOwners ?? [];
  const schemaOwners = named(who.schemaOwners);
  const extensionOwners = who.extensionOwners ?? [];
  const asksNothing =
    roleNames.length === 0 && databaseOwners.length === 0 && schemaOwners.length === 0 && who.relationOwners === undefined && extensionOwners.length === 0;
  // A superuser holds every role: no round trip to find what it lacks.
  const rows = asksNothing || (await ctx.borrower.superuser(ctx)) ? [] : await ctx.client.query<BorrowRow>(
    BORROW_QUERY,
    [roleNames, databaseOwners, schemaOwners, who.relationOwners?.schema ?? null, who.relationOwners?.kinds ?? [], extensionOwners],
    { database, signal: ctx.signal },
  );
  const perGrant = rows[0]?.per_grant ?? true;
  // Sorted (the query's order): two operations borrowing the same roles take their locks in one order.
  const roles = rows.filter((r) => r.borrowable).map((r) => r.role);
  const lacking = rows.filter((r) => !r.borrowable).map((r) => r.role);
  return {
    roles,
    around: (statements, readBack) => [
      ...roles.map((r) => borrowRoleSql(r, perGrant)),
      ...statements,
      ...roles.map((r) => returnRoleSql(r, perGrant)),
      ...(readBack === undefined ? [] : [readBack]),
    ],
    async explained(run) {
      try {
        return await run();
      } catch (err) {
        if (faultCode(err) !== '42501') throw err;
        // Perhaps no longer a superuser: asked again next time.
        ctx.borrower.forget();
        if (lacking.length === 0) throw err;
        const f = toFault(err);
        const grants = lacking.map((r) => `${grantMembershipSql(rows[0]?.me ?? ctx.user, r).text}${perGrant ? ' WITH INHERIT TRUE, SET TRUE' : ''}`).join('; ');
        throw new FaultError(
          { ...f, hint: `the backend user acts here as ${lacking.map((r) => JSON.stringify(r)).join(', ')} and may do so only as a member: ${grants} (or connect as a superuser)` },
          { cause: err },
        );
      }
    },
  };
}

/**
 * What a backend keeps across its operations for `borrowedRoles`: whether its user is a superuser (who
 * borrows nothing), and the order of borrows and changes of the user's own memberships.
 */
export class Borrower {
  #superuser: Promise<boolean> | undefined;
  /** Borrows share it; a change of the backend user's memberships takes all of it. */
  readonly #memberships = new Semaphore(Number.MAX_SAFE_INTEGER);

  /** Runs an operation that may borrow roles: alongside others, never alongside `changingMemberships`; `signal` ends its wait. */
  borrowing<T>(run: () => Promise<T>, signal: AbortSignal): Promise<T> {
    return this.#memberships.run(run, 1, signal);
  }

  /**
   * Runs a change of the backend user's own memberships (its role declared with memberOf) alone: a
   * membership granted while a borrow of the same role is open would end with the borrow's revoke
   * (the borrow's own check fails it instead, but only across processes is that needed).
   */
  changingMemberships<T>(run: () => Promise<T>, signal: AbortSignal): Promise<T> {
    return this.#memberships.run(run, Number.MAX_SAFE_INTEGER, signal);
  }

  /**
   * Read once, and again after `forget` (a refused privilege: the user may have lost SUPERUSER) or a
   * failure. Operations share the read, so it runs with a signal of its own: one caller's abort
   * would fail every other with it.
   */
  superuser(ctx: Pick<KindContext, 'client'>): Promise<boolean> {
    if (this.#superuser !== undefined) return this.#superuser;
    const read = ctx.client
      .query<{ rolsuper: boolean }>(SUPERUSER_QUERY, [], { signal: ctx.client.ownSignal() })
      .then((rows) => rows[0]?.rolsuper === true)
      .catch((err: unknown) => {
        // Not a newer read (after `forget`) that this one's failure would discard.
        if (this.#superuser === read) this.#superuser = undefined;
        throw err;
      });
    this.#superuser = read;
    return read;
  }

  forget(): void {
    this.#superuser = undefined;
  }
}

/**
 * Runs `statements` (then `readBack`) in one transaction with the privileges of `who`, borrowed as
 * `borrowedRoles` says; the rows of the last statement.
 */
export async function executeAs(
  who: ActingAs,
  statements: readonly Statement[],
  ctx: KindContext,
  options: { readonly database?: string | undefined; readonly readBack?: Statement },
): Promise<Record<string, unknown>[]> {
  if (statements.length === 0) return options.readBack === undefined ? [] : ctx.client.execute([options.readBack], { database: options.database, signal: ctx.signal });
  const borrowing = await borrowedRoles(who, ctx, options.database);
  return borrowing.explained(() => ctx.client.execute(borrowing.around(statements, options.readBack), { database: options.database, signal: ctx.signal }));
}
