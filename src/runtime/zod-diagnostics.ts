import type { z } from 'zod';
import type { DiagnosticBag } from './diagnostics.ts';
import { suggestion } from './diagnostics.ts';
import type { SourceLocation } from './node-spec.ts';
import type { PathKey } from './yaml-source.ts';

/** Dotted form of a path: `spec.memberOf[1]`. */
export function formatPath(path: readonly PathKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

type AnySchema = z.core.$ZodType;

/** The object keys a schema accepts at `path` (through optional, default, arrays, unions). */
export function keysAt(schema: AnySchema, path: readonly PathKey[]): string[] {
  const found = new Set<string>();
  const visit = (s: AnySchema, rest: readonly PathKey[], budget: number): void => {
    if (budget <= 0) return;
    const def = (s as unknown as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def;
    switch (def.type) {
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'readonly':
      case 'nonoptional':
      case 'catch':
        visit(def.innerType as AnySchema, rest, budget - 1);
        return;
      case 'pipe':
        visit(def.in as AnySchema, rest, budget - 1);
        return;
      case 'lazy':
        visit((def.getter as () => AnySchema)(), rest, budget - 1);
        return;
      case 'union':
        for (const o of def.options as AnySchema[]) visit(o, rest, budget - 1);
        return;
      case 'intersection':
        visit(def.left as AnySchema, rest, budget - 1);
        visit(def.right as AnySchema, rest, budget - 1);
        return;
      case 'array':
        if (rest.length === 0) return;
        visit(def.element as AnySchema, rest.slice(1), budget - 1);
        return;
      case 'record':
        if (rest.length === 0) return;
        visit(def.valueType as AnySchema, rest.slice(1), budget - 1);
        return;
      case 'object': {
        const shape = def.shape as Record<string, AnySchema>;
        if (rest.length === 0) {
          for (const k of Object.keys(shape)) found.add(k);
          return;
        }
        const next = shape[String(rest[0])];
        if (next !== undefined) visit(next, rest.slice(1), budget - 1);
        return;
      }
      default:
        return;
    }
  };
  visit(schema, path, 64);
  return [...found];
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

function valueAt(root: unknown, path: readonly PathKey[]): unknown {
  let cur = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p as string];
  }
  return cur;
}

/**
 * Reports zod issues as diagnostics at their place in the user's file.
 * `prefix` is where the validated value sits inside the YAML document,
 * `owner` names what was validated ("local.file", "Goal") for messages.
 */
export function reportZodIssues(
  issues: readonly z.core.$ZodIssue[],
  options: {
    schema: AnySchema;
    input: unknown;
    prefix: readonly PathKey[];
    owner: string;
    locate: (path: readonly PathKey[], part?: 'key' | 'value') => SourceLocation;
    diag: DiagnosticBag;
  },
): void {
  const { schema, input, prefix, owner, locate, diag } = options;
  const seen = new Set<string>();
  const emit = (path: readonly PathKey[], part: 'key' | 'value', code: string, message: string): void => {
    const loc = locate([...prefix, ...path], part);
    const key = `${loc.line}:${loc.col}:${code}:${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    diag.error(loc, code, message);
  };
  const walk = (list: readonly z.core.$ZodIssue[]): void => {
    for (const issue of list) {
      const path = issue.path as PathKey[];
      const shown = formatPath([...prefix, ...path]);
      const actual = valueAt(input, path);
      switch (issue.code) {
        case 'unrecognized_keys':
          for (const k of issue.keys) {
            const candidates = keysAt(schema, path);
            emit([...path, k], 'key', 'unknown-field', `${formatPath([...prefix, ...path, k])} is not a field of ${owner}${suggestion(k, candidates)}`);
          }
          break;
        case 'invalid_type':
          if (actual === undefined) emit(path, 'key', 'missing-field', `${shown} is required by ${owner}`);
          else emit(path, 'value', 'invalid-type', `${shown}: ${issue.message.startsWith('Invalid input') ? `expected ${issue.expected}, got ${describeValue(actual)}` : issue.message}`);
          break;
        case 'invalid_union': {
          // Report the branch that got furthest, or a summary when none did.
          const branches = issue.errors.filter((b) => b.length > 0);
          const best = branches.sort((a, b) => depthOf(b) - depthOf(a))[0];
          if (issue.message !== 'Invalid input' || best === undefined || depthOf(best) <= path.length) {
            emit(path, 'value', 'invalid-value', `${shown}: ${issue.message === 'Invalid input' ? `${describeValue(actual)} does not match any accepted form` : issue.message}`);
          } else {
            walk(best);
          }
          break;
        }
        case 'invalid_value':
          emit(path, 'value', 'invalid-value', `${shown}: ${describeValue(actual)} is not one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${typeof actual === 'string' ? suggestion(actual, issue.values.map(String)) : ''}`);
          break;
        default:
          emit(path, 'value', 'invalid-value', `${shown}: ${issue.message}`);
      }
    }
  };
  walk(issues);
}

function depthOf(issues: readonly z.core.$ZodIssue[]): number {
  return Math.max(...issues.map((i) => i.path.length + (i.code === 'invalid_type' ? 0 : 0.5)));
}
