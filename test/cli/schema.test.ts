import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { goalJsonSchema } from '../../src/cli/json-schema.ts';
import { INFRA_NODE_TYPES } from '../../src/infra/index.ts';

const repo = join(import.meta.dirname, '..', '..');

/** The schema compiled by a validator of its own draft (2020-12), strict: an unknown keyword is an error, not ignored. */
function validator(): ValidateFunction {
  return new Ajv2020({ allErrors: true, strict: true, strictRequired: false, keywords: ['secret'] }).compile(goalJsonSchema());
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

const nodeDoc = (type: string, spec: unknown): unknown => ({ apiVersion: 'desiredstate/v1', kind: 'Goal', metadata: { name: 'g' }, spec: { nodes: [{ id: 'n', type, spec }] } });
const backendDoc = (type: string, config: unknown): unknown => ({ apiVersion: 'desiredstate/v1', kind: 'Backend', metadata: { name: 'b' }, spec: { type, config } });

describe('JSON Schema of goal files', () => {
  it('the committed schema/goal.schema.json is what `desiredstate schema` prints (regenerate it when the format changes)', () => {
    const committed = JSON.parse(readFileSync(join(repo, 'schema/goal.schema.json'), 'utf8')) as unknown;
    expect(committed).toEqual(goalJsonSchema());
  });

  it('says what each node type is, and "an" before a vowel: "Spec of an aws.s3.bucket node", "Config of an ansible backend"', () => {
    const text = JSON.stringify(goalJsonSchema());
    expect(text).toContain('"description":"An AWS S3 bucket (no built-in backend provisions it yet: a command generator of a script backend can)."');
    expect(text).toContain('"description":"Spec of an aws.s3.bucket node."');
    expect(text).toContain('"description":"Spec of a local.file node."');
    expect(text).toContain('"description":"Config of an ansible backend."');
    expect(text).toContain('"description":"Config of a postgres backend."');
    expect(text).not.toContain('The resource type:');
  });

  it('describes every node type, every backend type and the three document kinds', () => {
    const text = JSON.stringify(goalJsonSchema());
    for (const t of INFRA_NODE_TYPES) expect(text).toContain(`"const":"${t}"`);
    for (const f of builtinBackendFactories) expect(text).toContain(`"const":"${f.type}"`);
    for (const kind of ['Goal', 'Backend', 'Policy']) expect(text).toContain(`"const":"${kind}"`);
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
    // As `validate` takes them (README, "References between nodes"): a whole reference fills a typed field,
    // a reference anywhere in a string a text field whose pattern only the output can meet.
    { name: 'a whole reference in a number field', doc: nodeDoc('postgres.role', { name: 'app', connectionLimit: '${nodes.cfg.outputs.limit}' }), valid: true },
    { name: 'a whole reference in a boolean field, spaces inside the braces', doc: nodeDoc('postgres.role', { name: 'app', login: '${ nodes.cfg.outputs.login }' }), valid: true },
    { name: 'a whole reference in an enum field', doc: nodeDoc('aws.s3.bucket', { name: 'logs-bucket', region: 'eu-west-1', encryption: '${nodes.cfg.outputs.enc}' }), valid: true },
    { name: 'a reference in a patterned text field', doc: nodeDoc('local.file', { path: 'f', content: '', mode: '0${nodes.cfg.outputs.mode}' }), valid: true },
    { name: 'a whole reference in a list of a few values', doc: nodeDoc('postgres.grant', { role: 'r', database: 'd', on: 'database', privileges: ['${nodes.cfg.outputs.p}'] }), valid: true },
    { name: 'a whole reference in a list field', doc: nodeDoc('postgres.role', { name: 'app', memberOf: '${nodes.groups.outputs.names}' }), valid: true },
    { name: 'a whole reference in a map field', doc: nodeDoc('k8s.namespace', { name: 'app', labels: '${nodes.cfg.outputs.labels}' }), valid: true },
    { name: 'a whole reference for a generic.resource input', doc: nodeDoc('generic.resource', { input: '${nodes.cfg.outputs.input}' }), valid: true },
    { name: 'text around a reference in a list field', doc: nodeDoc('postgres.role', { name: 'app', memberOf: 'x${nodes.groups.outputs.names}' }), valid: false },
    { name: 'a whole reference where a secret reference belongs', doc: nodeDoc('postgres.role', { name: 'app', password: '${nodes.cfg.outputs.v}' }), valid: false },
    { name: 'text around a reference in a number field', doc: nodeDoc('postgres.role', { name: 'app', connectionLimit: 'x${nodes.cfg.outputs.limit}' }), valid: false },
    { name: 'a string without a reference in a number field', doc: nodeDoc('postgres.role', { name: 'app', connectionLimit: '10' }), valid: false },
    { name: 'a reference where a secret reference belongs', doc: nodeDoc('postgres.role', { name: 'app', password: { fromEnv: '${nodes.cfg.outputs.v}' } }), valid: false },
    // What the compiler accepts and refuses, the schema too (the audit of 2026-11-24 found these apart).
    { name: 'a goal label in a patterned text field', doc: nodeDoc('local.file', { path: 'f', content: '', mode: '${goal.labels.mode}' }), valid: true },
    { name: 'a node without a spec, where {} is a valid spec of its type', doc: { apiVersion: 'desiredstate/v1', kind: 'Goal', metadata: { name: 'g' }, spec: { nodes: [{ id: 'n', type: 'generic.resource' }] } }, valid: true },
    { name: 'a node without a spec, where its type needs fields', doc: { apiVersion: 'desiredstate/v1', kind: 'Goal', metadata: { name: 'g' }, spec: { nodes: [{ id: 'n', type: 'local.file' }] } }, valid: false },
    { name: 'a Backend name the compiler refuses', doc: { ...(backendDoc('local', {}) as object), metadata: { name: 'Local_Files' } }, valid: false },
    { name: 'a Policy name the compiler refuses', doc: { apiVersion: 'desiredstate/v1', kind: 'Policy', metadata: { name: 'Acme Standards' }, spec: {} }, valid: false },
    { name: 'a goal interval that is no duration', doc: { apiVersion: 'desiredstate/v1', kind: 'Goal', metadata: { name: 'g' }, spec: { interval: '5x' } }, valid: false },
    { name: 'a goal interval', doc: { apiVersion: 'desiredstate/v1', kind: 'Goal', metadata: { name: 'g' }, spec: { interval: '1m30s' } }, valid: true },
    { name: 'a backend timeout that is no duration', doc: backendDoc('exec', { timeout: 'banana' }), valid: false },
    { name: 'an unknown rule pack', doc: { apiVersion: 'desiredstate/v1', kind: 'Policy', metadata: { name: 'p' }, spec: { include: ['baselin'] } }, valid: false },
    { name: 'the baseline pack', doc: { apiVersion: 'desiredstate/v1', kind: 'Policy', metadata: { name: 'p' }, spec: { include: ['baseline'] } }, valid: true },
    { name: 'an empty severity map', doc: { apiVersion: 'desiredstate/v1', kind: 'Policy', metadata: { name: 'p' }, spec: { requiredLabels: [{ key: 'team', severity: {} }] } }, valid: false },
    { name: 'policy defaults that set nothing', doc: { apiVersion: 'desiredstate/v1', kind: 'Policy', metadata: { name: 'p' }, spec: { defaults: [{ types: ['local.file'], set: {} }] } }, valid: false },
    { name: 'a blank ignoreFields entry', doc: { apiVersion: 'desiredstate/v1', kind: 'Goal', metadata: { name: 'g' }, spec: { nodes: [{ id: 'n', type: 'local.file', ignoreFields: [' '], spec: { path: 'f', content: '' } }] } }, valid: false },
  ])('documents: $name → valid $valid', ({ doc, valid }) => {
    expect(validator()(doc)).toBe(valid);
  });
});

/** Every property of every object in the schema, with its path, that carries no description. */
function undescribed(node: unknown, path: string, out: string[]): string[] {
  if (Array.isArray(node)) {
    for (const n of node) undescribed(n, path, out);
  } else if (typeof node === 'object' && node !== null) {
    const o = node as Record<string, unknown>;
    const props = o.properties as Record<string, Record<string, unknown>> | undefined;
    const type = (props?.type?.const ?? props?.kind?.const) as string | undefined;
    const here = type === undefined ? path : `${path}[${type}]`;
    for (const [k, v] of Object.entries(props ?? {})) {
      if (typeof v.description !== 'string' || v.description === '') out.push(`${here}.${k}`);
      undescribed(v, `${here}.${k}`, out);
    }
    for (const [k, v] of Object.entries(o)) if (k !== 'properties') undescribed(v, here, out);
  }
  return out;
}

describe('descriptions', () => {
  // CLI.md: `schema` prints "the JSON Schema of goal files (every kind and field, with descriptions)".
  it('every field of every kind has a description', () => {
    expect([...new Set(undescribed(goalJsonSchema(), '', []))]).toEqual([]);
  });
});
