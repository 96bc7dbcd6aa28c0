import type { NodeSpecCodec } from '../runtime/index.ts';
import { desiredNodeSpec, sameSpecKey } from './desired.ts';
import type { InfraDesiredNodeSpec } from './desired.ts';
import { infraNodeSpecSchema } from './spec.ts';
import type { InfraNodeSpec } from './spec.ts';

/** Stores a node's spec as JSON (secret references, never values) and rebuilds it to delete a removed node. */
export const infraSpecCodec: NodeSpecCodec<InfraDesiredNodeSpec> = {
  /** With the identity of the backend it is applied at (`backendKey`), where it is not the name: the delete of a removed node goes through no other (`InfraNodeProvisioner.delete`). */
  encode(spec) {
    const key = spec.backendKey === spec.backendId ? {} : { backendKey: spec.backendKey };
    return { spec: spec.spec, backendId: spec.backendId, labels: spec.labels, environment: spec.environment, resource: spec.resource, ...key };
  },
  decode(json) {
    if (json === null || typeof json !== 'object') return undefined;
    const { spec, backendId, labels, environment, resource, backendKey } = json as {
      spec?: unknown;
      backendId?: unknown;
      labels?: unknown;
      environment?: unknown;
      resource?: unknown;
      backendKey?: unknown;
    };
    const parsed = infraNodeSpecSchema().safeParse(spec);
    if (!parsed.success || typeof backendId !== 'string') return undefined;
    const stored = parsed.data as unknown as InfraNodeSpec;
    // None stored (a record written before it was): its name, which the delete tells apart (`InfraNodeProvisioner.delete`).
    const key = typeof backendKey === 'string' ? backendKey : undefined;
    return desiredNodeSpec(stored, backendId, (labels ?? {}) as Record<string, string>, typeof environment === 'string' ? environment : undefined, {
      resource: typeof resource === 'string' ? resource : undefined,
      backendKey: key,
      // From the spec as stored, never stored itself: a record written before it was known has one too.
      sameSpec: sameSpecKey(stored, key),
    });
  },
  /**
   * The resource its backend named at compile time (`InfraDesiredNodeSpec.resource`), within the
   * backend instance its `backendKey` names (`path conf/a on backend 3f0c…`): one resource whatever
   * the Backend's name, so that a node moved to another Backend reaching the same place holds it, and
   * two places under one name never match. Where the key is the name (a record written before the
   * identity was stored with it, goals compiled without a working directory), the backend is not known,
   * and the resource alone is the key (`formerKeys`): it may be any node's of that name, which only
   * keeps it from being deleted.
   */
  resourceKey(spec) {
    return spec.resource === undefined ? undefined : resourceOn(spec.resource, spec);
  },
  /** `InfraDesiredNodeSpec.names`, as `resourceKey` writes a key. */
  namedResources(spec) {
    return (spec.names ?? []).map((name) => resourceOn(name, spec));
  },
  /** Its keys as a spec whose backend is not known has them (`resourceKey`): a record written before the identity was stored with it. */
  formerKeys(spec) {
    if (spec.backendKey === spec.backendId) return undefined;
    return { resource: spec.resource, names: spec.names ?? [], sameSpec: spec.sameSpec === undefined ? undefined : sameSpecKey(spec.spec, undefined) };
  },
  /** `path conf/a on backend local`: by the Backend's name. */
  describeResource(spec) {
    return spec.resource === undefined ? undefined : `${spec.resource} on backend ${spec.backendId}`;
  },
  /** `InfraDesiredNodeSpec.sameSpec`: its backend and spec, on a backend that tells resources by spec and id alone. */
  sameSpecKey(spec) {
    return spec.sameSpec;
  },
};

/** `resource` on the backend `spec` names by its identity; `resource` alone where it names none (`resourceKey`). Unambiguous: a resource names no backend by a word ` on backend `. */
function resourceOn(resource: string, spec: InfraDesiredNodeSpec): string {
  return spec.backendKey === spec.backendId ? resource : `${resource} on backend ${spec.backendKey}`;
}
