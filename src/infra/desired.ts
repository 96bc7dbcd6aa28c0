import { NODE_SPEC, sha256, stableStringify } from '../runtime/index.ts';
import type { DesiredNode, NodeSpec } from '../runtime/index.ts';
import { operationalFields } from './spec.ts';
import type { InfraNodeSpec } from './spec.ts';

/**
 * The wrapper: a resource spec (WHAT) and the backend instance that
 * provisions it (HOW). The only infra type that is a runtime `NodeSpec`.
 */
export interface InfraDesiredNodeSpec<T extends InfraNodeSpec = InfraNodeSpec> extends NodeSpec {
  readonly spec: T;
  /** Goal and node labels, merged; backends whose resources carry tags apply them. */
  readonly labels: Readonly<Record<string, string>>;
  /**
   * The goal's `metadata.environment` (dev, prod …), for backends whose
   * behaviour depends on it (approvals). Not part of the digest: moving a
   * goal between environments changes no resource.
   */
  readonly environment: string;
  /**
   * What names the real resource within its backend instance (`path conf/app.toml`, `role app`),
   * as the backend's `resourceKey` says at compile time; undefined when it cannot say. Two nodes
   * never share one (a compile error); a removed node whose resource a node of the goals still
   * names (its id was changed) is let go, never deleted.
   */
  readonly resource?: string | undefined;
  /**
   * The other resources of its backend instance it names (`BackendFactory.namedResources`), keyed as
   * `resource` is: a removed node whose resource one of the goals names is not deleted while it does.
   * Not stored with the spec: only the goals' nodes are asked.
   */
  readonly names?: readonly string[] | undefined;
  /**
   * Where nothing but the spec and the node's id tells its resource from another
   * (`BackendFactory.identifiedBySpecAndId`), the key of its backend and spec (`sameSpecKey`);
   * undefined otherwise. A spec read back from the state store always has one, as which backend type
   * ran it is not stored: only a node of the goals whose backend says so can have that key too. A
   * removed node whose key a node of the goals has is let go, never deleted.
   */
  readonly sameSpec?: string | undefined;
  /**
   * What the managed digest names the backend by: the digest of its type and identity
   * (`BackendRegistry.identityKey`) where the goals were compiled from a working directory, so that a
   * Backend renamed, pointing where it did, changes no node's managed digest, while one pointing
   * elsewhere (another root, another server) does; its name (`backendId`) otherwise. Stored with a
   * record's spec (`infraSpecCodec`): a removed node is deleted only through a backend with that key.
   */
  readonly backendKey: string;
}

/**
 * The key of a spec on a backend (by its identity: `backendKey`), whoever writes it (`InfraDesiredNodeSpec.sameSpec`):
 * the same whatever the order of its keys. Where the identity is not known (undefined), the spec's on any backend.
 */
export function sameSpecKey(spec: InfraNodeSpec, backendKey: string | undefined): string {
  return sha256(stableStringify(backendKey === undefined ? [spec] : [backendKey, spec]));
}

/**
 * Wraps a spec for the runtime. The only place the NodeSpec brand is set for
 * infrastructure. `extra.digest` is for a spec whose digest was computed when
 * it was compiled, `extra.managedDigest` likewise (the compiled-goal cache restores them rather than hash again).
 */
export function desiredNodeSpec<T extends InfraNodeSpec>(
  spec: T,
  backendId: string,
  labels: Readonly<Record<string, string>> = {},
  environment = 'default',
  extra: {
    readonly digest?: string | undefined;
    readonly managedDigest?: string | undefined;
    readonly resource?: string | undefined;
    readonly names?: readonly string[] | undefined;
    readonly sameSpec?: string | undefined;
    readonly backendKey?: string | undefined;
  } = {},
): InfraDesiredNodeSpec<T> {
  const digest = extra.digest ?? specDigest(spec, backendId, labels);
  const backendKey = extra.backendKey ?? backendId;
  return Object.freeze({
    [NODE_SPEC]: true as const,
    type: spec.type,
    backendId,
    backendKey,
    digest,
    managedDigest: extra.managedDigest ?? managedDigest(spec, backendId, backendKey, labels, digest),
    spec: Object.freeze(spec),
    // A frozen map cannot change under the node: shared (the goal cache gives 10,000 nodes one), not copied.
    labels: Object.isFrozen(labels) ? labels : Object.freeze({ ...labels }),
    environment,
    resource: extra.resource,
    names: extra.names,
    sameSpec: extra.sameSpec,
  });
}

/**
 * `wrapper` with its spec replaced by `spec`, the same spec with its references to other nodes'
 * outputs resolved, and the digest of that spec: the one the node is applied at (`ResolvedAt`), so
 * that a changed output is a change of the goal, not drift. Hashed once per resolve (the dispatcher
 * keeps the resolved node while the outputs it used stay the same), never per observation.
 */
export function resolvedNodeSpec<T extends InfraNodeSpec>(wrapper: InfraDesiredNodeSpec, spec: T): InfraDesiredNodeSpec<T> {
  const digest = specDigest(spec, wrapper.backendId, wrapper.labels);
  return { ...wrapper, spec, digest, managedDigest: managedDigest(spec, wrapper.backendId, wrapper.backendKey, wrapper.labels, digest) };
}

/** A node of the infrastructure graph. */
export type InfraNode<T extends InfraNodeSpec = InfraNodeSpec> = DesiredNode<InfraDesiredNodeSpec<T>>;

/**
 * The spec's digest, computed for every node at every compile. Specs come out
 * of their zod schema with keys in schema order, so plain JSON is already
 * canonical for them; only the labels (merged from two maps) are sorted.
 */
function specDigest(spec: InfraNodeSpec, backendId: string, labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels);
  const labelText = keys.length === 0 ? '{}' : stableStringify(labels);
  return sha256(`${backendId}\n${labelText}\n${JSON.stringify(spec)}`).slice(0, 32);
}

/**
 * `NodeSpec.managedDigest`: the digest of the spec without its labels (no backend applies them) and
 * its type's `operationalFields`, on the backend its `backendKey` names. `digest` itself where that
 * leaves the same text (no labels, no such field, the backend named by its name): hashed once.
 */
function managedDigest(spec: InfraNodeSpec, backendId: string, backendKey: string, labels: Readonly<Record<string, string>>, digest: string): string {
  const operational = (operationalFields[spec.type] ?? []).filter((f) => Object.hasOwn(spec, f));
  if (operational.length === 0 && Object.keys(labels).length === 0 && backendKey === backendId) return digest;
  const managed = Object.fromEntries(Object.entries(spec).filter(([k]) => !operational.includes(k)));
  return specDigest(managed as InfraNodeSpec, backendKey, {});
}
