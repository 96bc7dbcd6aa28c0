import type { InfraNodeSpec } from '../../infra/index.ts';

/**
 * Pure: what a script receives as `input`, and the shape that keys the
 * script cache. A shape is the sorted set of keys with their JSON types,
 * recursively for objects, never the values: one script serves every node of
 * the same kind and shape, the values arriving on stdin.
 */

export type JsonType = 'string' | 'number' | 'boolean' | 'null' | 'array' | 'object';

/** The shape of a JSON value: a type name, or for an object its keys' shapes. */
export type Shape = JsonType | { readonly [key: string]: Shape };

/** The protocol `input` of a node: `spec.input` for `generic.resource`, the spec without `type` otherwise. */
export function inputOf(spec: InfraNodeSpec): Readonly<Record<string, unknown>> {
  if (spec.type === 'generic.resource') return spec.input;
  const { type: _type, ...rest } = spec;
  return rest;
}

export function jsonType(value: unknown): JsonType {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'number':
    case 'bigint':
      return 'number';
    case 'boolean':
      return 'boolean';
    default:
      return 'object';
  }
}

/** The shape of a value (objects recursively, keys sorted; at most `depth` levels). */
export function shapeOf(value: unknown, depth = 4): Shape {
  const t = jsonType(value);
  if (t !== 'object' || depth === 0) return t;
  const obj = value as Record<string, unknown>;
  const out: Record<string, Shape> = {};
  for (const key of Object.keys(obj).sort()) if (obj[key] !== undefined) out[key] = shapeOf(obj[key], depth - 1);
  return out;
}

/** The canonical text of a shape: the cache key (keys are already sorted). */
export function shapeKey(shape: Shape): string {
  return JSON.stringify(shape);
}
