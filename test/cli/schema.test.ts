import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { goalJsonSchema } from '../../src/cli/json-schema.ts';
import { INFRA_NODE_TYPES } from '../../src/infra/index.ts';

const repo = join(import.meta.dirname, '..', '..');

describe('JSON Schema of goal files', () => {
  it('the committed schema/goal.schema.json is what `desiredstate schema` prints (regenerate it when the format changes)', () => {
    const committed = JSON.parse(readFileSync(join(repo, 'schema/goal.schema.json'), 'utf8')) as unknown;
    expect(committed).toEqual(goalJsonSchema());
  });

  it('describes every node type and the three document kinds', () => {
    const text = JSON.stringify(goalJsonSchema());
    for (const t of INFRA_NODE_TYPES) expect(text).toContain(`"const":"${t}"`);
    for (const kind of ['Goal', 'Backend', 'Policy']) expect(text).toContain(`"const":"${kind}"`);
  });
});
