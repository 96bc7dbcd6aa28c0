import { assertNever } from '../runtime/index.ts';
import type { NodeSpecCodec } from '../runtime/index.ts';
import { desiredNodeSpec } from './desired.ts';
import type { InfraDesiredNodeSpec } from './desired.ts';
import { infraNodeSpecSchema } from './spec.ts';
import type { InfraNodeSpec } from './spec.ts';

/** Stores a node's spec as JSON (secret references, never values) and rebuilds it to delete a removed node. */
export const infraSpecCodec: NodeSpecCodec<InfraDesiredNodeSpec> = {
  encode(spec) {
    return { spec: spec.spec, backendId: spec.backendId, labels: spec.labels, environment: spec.environment };
  },
  decode(json) {
    if (json === null || typeof json !== 'object') return undefined;
    const { spec, backendId, labels, environment } = json as { spec?: unknown; backendId?: unknown; labels?: unknown; environment?: unknown };
    const parsed = infraNodeSpecSchema.safeParse(spec);
    if (!parsed.success || typeof backendId !== 'string') return undefined;
    return desiredNodeSpec(parsed.data as unknown as InfraNodeSpec, backendId, (labels ?? {}) as Record<string, string>, typeof environment === 'string' ? environment : undefined);
  },
  resourceKey(spec) {
    const identity = resourceIdentity(spec.spec);
    return identity === undefined ? undefined : JSON.stringify([spec.backendId, spec.spec.type, identity]);
  },
};

/**
 * The fields that name a resource of each type (a role's name, a schema's
 * database and name, a file's path …): what a backend finds it by. None for
 * a type whose resource may be named by the node id itself (the exec
 * protocol hands commands the id) or that names no resource (a playbook).
 */
function resourceIdentity(s: InfraNodeSpec): unknown {
  switch (s.type) {
    case 'local.file':
    case 'local.directory':
    case 'local.symlink':
      return s.path;
    case 'postgres.database':
    case 'postgres.role':
    case 'k8s.namespace':
    case 'aws.s3.bucket':
      return s.name;
    case 'postgres.schema':
    case 'postgres.extension':
      return [s.database, s.name];
    case 'postgres.grant':
      return [s.role, s.database, s.schema ?? null, s.on, s.forRole ?? null];
    case 'k8s.configmap':
      return [s.namespace, s.name];
    case 'terraform.workspace':
      return [s.module, s.workspace];
    case 'ansible.playbook':
    case 'generic.resource':
      return undefined;
    default:
      return assertNever(s, 'node spec');
  }
}
