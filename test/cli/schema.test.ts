import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import Ajv from 'ajv';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { goalJsonSchema } from '../../src/cli/json-schema.ts';
import { INFRA_NODE_TYPES } from '../../src/infra/index.ts';

const repo = join(import.meta.dirname, '..', '..');

// ajv 6 (already installed, through eslint) implements draft-07. The schema
// says draft 2020-12, but uses only keywords that mean the same in both:
// this list holds it to that, so a 2020-12-only keyword (prefixItems,
// unevaluatedProperties …) fails here instead of being silently ignored.
const DRAFT7_KEYWORDS = new Set(['type', 'properties', 'required', 'additionalProperties', 'propertyNames', 'items', 'anyOf', 'oneOf', 'allOf', 'const', 'enum', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minItems', 'maxItems', 'format']);
const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', 'default', 'secret']);

function keywordsOf(schema: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(schema)) for (const s of schema) keywordsOf(s, out);
  else if (typeof schema === 'object' && schema !== null) {
    for (const [k, v] of Object.entries(schema)) {
      out.add(k);
      if (k === 'properties') for (const p of Object.values(v as object)) keywordsOf(p, out);
      else if (k !== 'const' && k !== 'enum' && k !== 'default') keywordsOf(v, out);
    }
  }
  return out;
}

function validator(): Ajv.ValidateFunction {
  const { $schema: _draft, ...schema } = goalJsonSchema();
  return new Ajv({ allErrors: true }).compile(schema);
}

function yamlFiles(dir: string): string[] {
  return readdirSync(join(repo, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => join(repo, dir, f))
    .sort();
}

function documents(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as unknown);
}

const backendDoc = (type: string, config: unknown): unknown => ({ apiVersion: 'desiredstate/v1', kind: 'Backend', metadata: { name: 'b' }, spec: { type, config } });

describe('JSON Schema of goal files', () => {
  it('the committed schema/goal.schema.json is what `desiredstate schema` prints (regenerate it when the format changes)', () => {
    const committed = JSON.parse(readFileSync(join(repo, 'schema/goal.schema.json'), 'utf8')) as unknown;
    expect(committed).toEqual(goalJsonSchema());
  });

  it('describes every node type, every backend type and the three document kinds', () => {
    const text = JSON.stringify(goalJsonSchema());
    for (const t of INFRA_NODE_TYPES) expect(text).toContain(`"const":"${t}"`);
    for (const f of builtinBackendFactories) expect(text).toContain(`"const":"${f.type}"`);
    for (const kind of ['Goal', 'Backend', 'Policy']) expect(text).toContain(`"const":"${kind}"`);
  });

  it('uses only keywords with the same meaning in draft-07, which the validator below implements', () => {
    const unknown = [...keywordsOf(goalJsonSchema())].filter((k) => !DRAFT7_KEYWORDS.has(k) && !ANNOTATIONS.has(k));
    expect(unknown).toEqual([]);
  });

  it.each([...yamlFiles('goals'), ...yamlFiles('examples')].map((file) => ({ file: relative(repo, file) })))('the bundled $file validates against it', ({ file }) => {
    const validate = validator();
    for (const doc of documents(join(repo, file))) {
      expect(validate(doc) ? [] : validate.errors).toEqual([]);
    }
  });

  it.each([
    { name: 'local: root', doc: backendDoc('local', { root: 'x' }), valid: true },
    { name: 'local: no config at all (every field has a default)', doc: { apiVersion: 'desiredstate/v1', kind: 'Backend', metadata: { name: 'local' }, spec: { type: 'local' } }, valid: true },
    { name: 'postgres: host, a secret password, TLS fields', doc: backendDoc('postgres', { host: 'db', port: 5433, user: 'u', database: 'd', password: { fromEnv: 'PGPASSWORD' }, sslmode: 'verify-full', sslRootCert: 'ca.pem', connectTimeout: '5s', poolSize: 3 }), valid: true },
    { name: 'postgres: a misspelt field', doc: backendDoc('postgres', { hots: 'db' }), valid: false },
    { name: 'postgres: no config (host is required)', doc: { apiVersion: 'desiredstate/v1', kind: 'Backend', metadata: { name: 'b' }, spec: { type: 'postgres' } }, valid: false },
    { name: 'postgres: an inline password', doc: backendDoc('postgres', { host: 'db', password: 'hunter2' }), valid: false },
    { name: 'postgres: an unknown sslmode', doc: backendDoc('postgres', { host: 'db', sslmode: 'allow-ish' }), valid: false },
    { name: 'local: a field of another backend type', doc: backendDoc('local', { host: 'db' }), valid: false },
    { name: 'exec: timeout as a duration', doc: backendDoc('exec', { timeout: '30s', env: ['PATH'] }), valid: true },
    { name: 'an unknown backend type', doc: backendDoc('sqlite', {}), valid: false },
    { name: 'a Backend with another apiVersion', doc: { ...(backendDoc('local', {}) as object), apiVersion: 'desiredstate/v2' }, valid: false },
    { name: 'a Policy with another apiVersion', doc: { apiVersion: 'v1', kind: 'Policy', metadata: { name: 'p' }, spec: {} }, valid: false },
    { name: 'a Goal node with a misspelt spec field', doc: { apiVersion: 'desiredstate/v1', kind: 'Goal', metadata: { name: 'g' }, spec: { nodes: [{ id: 'f', type: 'local.file', spec: { path: 'f', contnet: 'x' } }] } }, valid: false },
    { name: 'a Policy', doc: { apiVersion: 'desiredstate/v1', kind: 'Policy', metadata: { name: 'p' }, spec: {} }, valid: true },
  ])('documents: $name → valid $valid', ({ doc, valid }) => {
    expect(validator()(doc)).toBe(valid);
  });
});
