import { describe, expect, it } from 'vitest';
import { compileTexts, goalYaml, policyYaml } from './helpers.ts';

/**
 * A finding's message is printed, logged, stored and put in SARIF: where
 * it quotes the spec, what looks like a secret in a file's text is masked
 * as `plan` shows that text (`shownSpec`), whatever check made it.
 */
const content = 'DB_PASSWORD=hunter2-supersecret\nPASS=abc\nport = 8080\n';

function messages(rule: Record<string, unknown>): string[] {
  const { engine } = compileTexts({
    'p.yaml': policyYaml(rule),
    'g.yaml': goalYaml({ environment: 'dev', nodes: [{ id: 'f', type: 'local.file', spec: { path: 'app.env', content } }] }),
  });
  return engine.findings().map((f) => f.message);
}

function cel(require: string): Record<string, unknown> {
  return { rules: [{ id: 'r', description: 'd', types: ['local.file'], require, severity: { default: 'medium' } }] };
}

describe('finding messages quote the spec masked, as plan shows it', () => {
  it('a naming rule on the text shows it as plan does', () => {
    expect(messages({ naming: [{ types: ['local.file'], field: 'content', pattern: '^ok$', severity: { default: 'low' } }] })).toEqual([
      'spec.content "DB_PASSWORD=<secret>\nPASS=<secret>\nport = 8080\n" does not match ^ok$',
    ]);
  });

  it.each([
    { name: 'a conversion error quoting the value', require: "int(spec.content.split('\\n')[0].split('=')[1]) > 0", quotes: 'cannot convert string "<secret>" to int' },
    { name: 'a missing key quoting the whole text', require: "{'a': true}[spec.content]", quotes: 'DB_PASSWORD=<secret>' },
    { name: 'a bad regex built from the text', require: "'x'.matches(spec.content + '(')", quotes: 'DB_PASSWORD=<secret>' },
  ])('a rule error: $name', ({ require, quotes }) => {
    const [message, ...rest] = messages(cel(require));
    expect(rest).toEqual([]);
    expect(message).toContain(quotes);
    expect(message).not.toContain('hunter2');
    expect(message).not.toContain('PASS=abc');
  });
});

describe('finding messages quote an exec or script input masked, as plan shows it', () => {
  const input = { path: 'app.env', content: 'DB_PASSWORD=hunter2-supersecret\n', db: { apiKey: 'k-0123456789abc' } };

  function inputMessages(require: string): string[] {
    const { engine } = compileTexts({
      'p.yaml': policyYaml({ rules: [{ id: 'r', description: 'd', types: ['generic.resource'], require, severity: { default: 'medium' } }] }),
      'g.yaml': goalYaml({ environment: 'dev', nodes: [{ id: 'e', type: 'generic.resource', spec: { input } }] }),
    });
    return engine.findings().map((f) => f.message);
  }

  it.each([
    { name: 'a missing key quoting a text', require: "{'a': true}[spec.input.content]", quotes: 'DB_PASSWORD=<secret>', secret: 'hunter2' },
    { name: 'a missing key quoting a value under a secret\'s name', require: "{'a': true}[spec.input.db.apiKey]", quotes: '<secret>', secret: 'k-0123456789abc' },
  ])('a rule error: $name', ({ require, quotes, secret }) => {
    const [message, ...rest] = inputMessages(require);
    expect(rest).toEqual([]);
    expect(message).toContain(quotes);
    expect(message).not.toContain(secret);
  });
});
