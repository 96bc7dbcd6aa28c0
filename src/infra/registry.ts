import { DesiredStateError, ErrorCodes, sha256, stableStringify, suggestion } from '../runtime/index.ts';
import type { SourceLocation } from '../runtime/index.ts';
import type { BackendContext, BackendFactory, InfraBackend } from './backend.ts';

/** A configured backend instance, as declared by a Backend document (or the default `local`). */
export interface BackendDeclaration {
  readonly id: string;
  readonly type: string;
  /** The config, already validated by the factory's schema. */
  readonly config: unknown;
  readonly source?: SourceLocation | undefined;
}

/**
 * Backend implementations by type. Fails at boot, with a coded error, on a
 * duplicate implementation, output keys declared for a kind the
 * implementation does not provision, an unknown type or a duplicate
 * instance id.
 */
export class BackendRegistry {
  private readonly factories = new Map<string, BackendFactory>();

  constructor(factories: readonly BackendFactory<unknown>[] = []) {
    for (const f of factories) this.register(f);
  }

  register<C>(factory: BackendFactory<C>): this {
    if (this.factories.has(factory.type)) {
      throw new DesiredStateError(ErrorCodes.DuplicateBackend, `backend type "${factory.type}" is registered twice`, { context: { type: factory.type } });
    }
    // An entry for a kind it does not provision is a typo or a leftover: references to it would be checked against keys no resource has.
    const kinds: ReadonlySet<string> = new Set(factory.kinds);
    for (const kind of Object.keys(factory.outputs ?? {})) {
      if (!kinds.has(kind)) {
        throw new DesiredStateError(ErrorCodes.UnsupportedType, `backend type "${factory.type}" declares outputs for ${kind}, which it does not provision`, {
          context: { type: factory.type, kind },
        });
      }
    }
    this.factories.set(factory.type, factory as BackendFactory);
    return this;
  }

  types(): string[] {
    return [...this.factories.keys()];
  }

  get(type: string): BackendFactory | undefined {
    return this.factories.get(type);
  }

  /** The factory for `type`, or a coded error with a suggestion. */
  require(type: string): BackendFactory {
    const f = this.factories.get(type);
    if (f === undefined) {
      throw new DesiredStateError(ErrorCodes.UnknownBackendType, `unknown backend type "${type}"${suggestion(type, this.factories.keys())}`, { context: { type } });
    }
    return f;
  }

  /**
   * A digest of `decl`'s type and of what of its config names the resources it acts on
   * (`BackendFactory.identity`), resolved from `cwd`; the whole config and `location` for an
   * implementation that does not say. Not its name: two declarations with one key reach the same
   * resources, so a Backend renamed, and nothing else, is declared as before.
   */
  identityKey(decl: Pick<BackendDeclaration, 'type' | 'config'>, cwd: string): string {
    const factory = this.factories.get(decl.type);
    // Key order aside: the compiled-goal cache and a fresh compile give the same digest.
    const identity = factory?.identity === undefined ? { config: decl.config, location: factory?.location?.(decl.config, { cwd }) } : factory.identity(decl.config, { cwd });
    return sha256(stableStringify({ type: decl.type, identity })).slice(0, 32);
  }

  /**
   * Where `decl` points, for people (`root /srv/app`, `host db, port 5432`): its identity's fields
   * (`BackendFactory.identity`), else its `location`; undefined where neither says.
   */
  describeIdentity(decl: Pick<BackendDeclaration, 'type' | 'config'>, cwd: string): string | undefined {
    const factory = this.factories.get(decl.type);
    const identity = factory?.identity?.(decl.config, { cwd });
    if (identity !== null && typeof identity === 'object') {
      const fields = Object.entries(identity).map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`);
      if (fields.length > 0) return fields.join(', ');
    }
    return factory?.location?.(decl.config, { cwd });
  }

  /** Builds one instance per declaration. */
  instantiate(declarations: readonly BackendDeclaration[], ctx: Omit<BackendContext, 'id'>): Map<string, InfraBackend> {
    const out = new Map<string, InfraBackend>();
    for (const d of declarations) {
      if (out.has(d.id)) {
        throw new DesiredStateError(ErrorCodes.DuplicateBackend, `backend id "${d.id}" is configured twice`, { context: { id: d.id } });
      }
      const factory = this.require(d.type);
      out.set(d.id, factory.create(d.config, { ...ctx, id: d.id, log: ctx.log.child({ backend: d.id }) }));
    }
    return out;
  }
}
