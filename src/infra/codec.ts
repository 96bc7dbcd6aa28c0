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
    return desiredNodeSpec(stored, backendId, (labels ?? {}) as Record<string, string>, typeof environment === 'string' ? environment : undefined, {
      resource: typeof resource === 'string' ? resource : undefined,
      // None stored (a record written before it was): its name, which the delete tells apart (`InfraNodeProvisioner.delete`).
      backendKey: typeof backendKey === 'string' ? backendKey : undefined,
      // From the spec as stored, never stored itself: a record written before it was known has one too.
      sameSpec: sameSpecKey(stored, backendId),
    });
  },
  /**
   * The resource its backend named at compile time (`InfraDesiredNodeSpec.resource`), within that
   * backend instance: `path conf/a on backend local`. Read by people too (a resource let go is
   * named in plans and logs); unambiguous, since a backend's name has no space.
   */
  resourceKey(spec) {
    return spec.resource === undefined ? undefined : `${spec.resource} on backend ${spec.backendId}`;
  },
  /** `InfraDesiredNodeSpec.names`, as `resourceKey` writes a key. */
  namedResources(spec) {
    return (spec.names ?? []).map((name) => `${name} on backend ${spec.backendId}`);
  },
  /** `InfraDesiredNodeSpec.sameSpec`: its backend and spec, on a backend that tells resources by spec and id alone. */
  sameSpecKey(spec) {
    return spec.sameSpec;
  },
};
