import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, goalHead, localBackend, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// Issue 6: "evaluation cost is bounded". The audit's rules hung `validate` (a 130-character rule of five
// chained replaces: 30 s; six: still running after 90 s; an ordinary rule over 400 KB of content: 37 s),
// blocked a running daemon (/healthz answered after 49 s), and one of 978 bytes ran it out of memory:
// FATAL, exit 134, no "revision rejected", and the same crash on every restart. Each now stops at its
// cost budget: a rule error at the node, naming the rule and where it is written, which fails closed.
const daemons = trackDaemons();

const A10 = 'aaaaaaaaaa';
const a250 = 'a'.repeat(250);
const a100 = 'a'.repeat(100);
const RULES = {
  'chained-replace': `'${A10}'${`.replace('a','${A10}')`.repeat(6)} != ''`,
  'split-map': `'${a250}'.replace('a','${a100}').split('').map(c, '${a250}'.replace('a','${a100}').split('')).size() > 0`,
  'no-password': "!spec.content.replace(' ', '').lowerAscii().contains('password=')",
} as const;

/** A Policy whose rules are at lines 11, 17 and 23 (col 16): `rules`, each scoped by `when` to one file unless it has none. */
function policy(rules: readonly { id: keyof typeof RULES; path?: string }[]): string {
  const entries = rules.map(
    ({ id, path }) =>
      `    - id: ${id}\n      description: The audit's ${id}.\n      types: [local.file]\n      when: "${path === undefined ? 'true' : `spec.path == '${path}'`}"\n      require: "${RULES[id]}"\n      severity: { default: high }\n`,
  );
  return `apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: acme }\nspec:\n  blockAt: high\n  rules:\n${entries.join('')}`;
}

const file = (id: string, content: string): string => `    - { id: ${id}, type: local.file, spec: { path: ${id}.conf, content: ${JSON.stringify(content)} } }\n`;

describe('validate on rules that cost too much', () => {
  it('each is a rule error at its node, naming the rule and its place, promptly; the other nodes are judged as ever', async () => {
    const p = tempProject('ds-cel-budget-');
    p.write('backend.yaml', localBackend(p.root));
    p.write('policy.yaml', policy([{ id: 'chained-replace', path: 'a.conf' }, { id: 'split-map', path: 'b.conf' }, { id: 'no-password' }]));
    // 4 MB of spaces after a character: the ordinary rule's replace was quadratic in it (37 s for 400 KB).
    p.write('app.yaml', `${goalHead('  defaults: { backend: local }\n')}${file('a', 'x')}${file('b', 'x')}${file('c', `x${' '.repeat(4_000_000)}`)}${file('d', 'no secrets here')}`);
    const r = await cli(['validate', '--goals', 'goals'], { cwd: p.dir });
    // validate prints its findings on stdout.
    expect(r.code, r.stderr).toBe(1);
    const budget = 'could not be evaluated (evaluation stopped at its cost budget (100000000 units, about 0.1 s of work) at 1:';
    expect(r.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^goals\/app\.yaml:7:\d+: error rule-error: \[high\] chained-replace: require \(goals\/policy\.yaml:11:16\) /),
      expect.stringMatching(/^goals\/app\.yaml:8:\d+: error rule-error: \[high\] split-map: require \(goals\/policy\.yaml:17:16\) /),
      expect.stringMatching(/^goals\/app\.yaml:9:\d+: error rule-error: \[high\] no-password: require \(goals\/policy\.yaml:23:16\) /),
    ]);
    for (const line of r.stdout.trim().split('\n')) expect(line).toContain(budget);
  });
});

describe('the daemon, given a policy revision with such a rule', () => {
  it('stays up: the rule error is logged, that node held, and the others reconciled on', async () => {
    const p = tempProject('ds-cel-budget-daemon-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', `${goalHead('  defaults: { backend: local }\n')}${file('conf', 'good\n')}${file('other', 'other\n')}`);
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const port = await d.port();
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'conf');
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'other');

    // The 978-byte policy that ran the daemon out of memory, and the hang, each on node `other`.
    const mark = d.lines.length;
    p.write('policy.yaml', policy([{ id: 'split-map', path: 'other.conf' }, { id: 'chained-replace', path: 'other.conf' }]));
    const warnings = await Promise.all(
      (['split-map', 'chained-replace'] as const).map((id) =>
        d.waitFor((l) => l.msg === 'goal warning' && l.code === 'rule-error' && String(l.text).includes(`] ${id}: require`), 20_000, mark),
      ),
    );
    for (const w of warnings) expect(String(w.text)).toContain('evaluation stopped at its cost budget');
    expect(warnings.map((w) => String(w.text).match(/require \((.*?)\)/)?.[1])).toEqual([expect.stringMatching(/policy\.yaml:11:16$/), expect.stringMatching(/policy\.yaml:17:16$/)]);
    await d.waitFor((l) => l.msg === 'goals loaded', 20_000, mark);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);

    // The other node is reconciled on: a hand edit is repaired.
    writeFileSync(join(p.root, 'conf.conf'), 'edited by hand\n');
    await eventually(() => readFileSync(join(p.root, 'conf.conf'), 'utf8') === 'good\n', 10_000, 'the hand edit repaired');
    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.stdout).toMatch(/^other\s.*\sheld\s.*\sheld by policy: split-map \(high, acme\), chained-replace \(high, acme\)$/m);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});
