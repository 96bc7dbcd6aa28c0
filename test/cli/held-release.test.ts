import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, shellResource, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

/**
 * What releases a node the fault policy held (README): an edit of its own spec, the argv of its
 * `commands` too, though that is no goal change for what is to converge; not an edit of its Backend's
 * settings alone (`retry` does). The reason said "held until the goal changes", read as any edit of
 * the goals, and "after 1 attempts".
 */
const p = tempProject('ds-held-release-');
// `create` fails (exit 1: a permanent fault) unless given `fixed`.
const script = shellResource(
  p.dir,
  `cat > /dev/null
case "$1" in
read) if [ -e "$dir/made" ]; then echo '{"exists":true}'; else echo '{"exists":false}'; fi ;;
create) [ "\${2:-}" = fixed ] || { echo 'no such flavour' >&2; exit 1; }; touch "$dir/made"; echo '{"outputs":{}}' ;;
esac
`,
);
// Held after its first failure.
const faults = join(p.dir, 'faults.yaml');
writeFileSync(faults, 'retry: { permanent: { retryBudget: 1 } }\n');
const daemons = trackDaemons(p.dir);
const goals = (backend: string, create: string): string => `${execGoalHead({ config: backend })}    - id: a
      type: generic.resource
      spec:
        commands: { read: [${script}, read], create: [${create}] }
        input: {}
`;

interface Node {
  id: string;
  status: string;
  reason: string | null;
}

async function node(): Promise<Node | undefined> {
  const r = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
  return (JSON.parse(r.stdout) as { nodes: Node[] }).nodes.find((n) => n.id === 'a');
}

describe('a held node', () => {
  it('says what releases it; an edit of its Backend leaves it held, one of its commands releases it', async () => {
    p.write('app.yaml', goals('{ timeout: 30s }', `${script}, create`));
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', '--fault-policy', faults, ...p.args], { cwd: p.dir });
    await eventually(async () => (await node())?.status === 'held', 20_000, 'a held');
    expect((await node())?.reason).toBe("no such flavour (permanent fault after 1 attempt; held until its goal (the node's spec) changes or `desiredstate retry NODE`)");

    p.write('app.yaml', goals('{ timeout: 45s }', `${script}, create`));
    let mark = d.lines.length;
    d.kill('SIGHUP');
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'SIGHUP', 20_000, mark);
    expect((await node())?.status).toBe('held');

    p.write('app.yaml', goals('{ timeout: 45s }', `${script}, create, fixed`));
    mark = d.lines.length;
    d.kill('SIGHUP');
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'SIGHUP', 20_000, mark);
    await eventually(async () => (await node())?.status === 'ready', 20_000, 'a released and created');
    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
  });
});
