import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, stateRows, tempProject } from '../support/cli.ts';

/**
 * "Secret values are never logged, printed in plans, or stored" (GOAL-FORMAT.md) holds for the
 * outputs a command prints too: a create that echoes the password it was handed on stdin, or the
 * allowlisted token it runs with, must not put either into the state store, `status` or a
 * dependent. They are stored and shown as the mask; a long allowlisted value under an ordinary
 * name (a region) is no secret and stays as it is.
 */
const p = tempProject('ds-exec-secret-outputs-');

const TOKEN = 'tok-SECRET-4711abc';
const PASSWORD = 'pw-SECRET-0815xyz';
const REGION = 'eu-west-1-prod';

// `cred` stores the password it is handed and prints it (and the token, and a URL holding the password)
// as outputs, from every create and read; `app` stores the input it is sent and reads it back as its state.
const script = join(p.dir, 'res');
writeFileSync(
  script,
  `#!/bin/sh
req=$(cat)
outputs() {
  pw=$(cat ${p.dir}/cred.state)
  printf '{"id":"cred-1","pw":"%s","tok":"%s","region":"%s","url":"postgres://app:%s@db/app"}' "$pw" "$MYTOKEN" "$REGION" "$pw"
}
case "$1.$2" in
  cred.read) if [ -f ${p.dir}/cred.state ]; then printf '{"exists":true,"state":{"pw":"%s"},"outputs":%s}\\n' "$(cat ${p.dir}/cred.state)" "$(outputs)"; else echo '{"exists":false}'; fi ;;
  cred.create) printf '%s' "$req" | sed 's/.*"pw":"\\([^"]*\\)".*/\\1/' > ${p.dir}/cred.state; printf '{"outputs":%s}\\n' "$(outputs)" ;;
  app.read) if [ -f ${p.dir}/app.state ]; then printf '{"exists":true,"state":%s}\\n' "$(cat ${p.dir}/app.state)"; else echo '{"exists":false}'; fi ;;
  app.*) printf '%s' "$req" | sed 's/.*"input":\\({[^}]*}\\).*/\\1/' > ${p.dir}/app.state; printf '%s\\n' "$req" >> ${p.dir}/app.requests; echo '{"outputs":{}}' ;;
esac
`,
);
chmodSync(script, 0o755);
p.write(
  'goals.yaml',
  `${execGoalHead({ config: '{ env: [PATH, MYTOKEN, REGION] }' })}    - id: cred
      type: generic.resource
      spec:
        commands: { read: [${script}, cred, read], create: [${script}, cred, create] }
        input: { pw: { fromEnv: MYPW } }
    - id: app
      type: generic.resource
      spec:
        commands: { read: [${script}, app, read], create: [${script}, app, create], update: [${script}, app, update] }
        input: { seen: "\${nodes.cred.outputs.pw}", region: "\${nodes.cred.outputs.region}", id: "\${nodes.cred.outputs.id}" }
`,
);

const env = { DESIREDSTATE_LOG_LEVEL: 'debug', MYTOKEN: TOKEN, MYPW: PASSWORD, REGION };

/** Every byte the state directory holds (state.db, its -wal and -shm, leases …), as one string. */
function stateBytes(): string {
  return readdirSync(p.state, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name)).toString('latin1'))
    .join('\n');
}

interface StatusNode {
  readonly id: string;
  readonly outputs: Record<string, unknown> | null;
  readonly updatedAt: string | number;
}

async function status(): Promise<StatusNode[]> {
  const r = await cli(['status', '--format', 'json', ...p.args], { env });
  expect(r.code).toBe(0);
  expect(r.stdout).not.toContain('SECRET');
  return (JSON.parse(r.stdout) as { nodes: StatusNode[] }).nodes;
}

describe('outputs a command prints that hold a secret', () => {
  it('are stored and shown masked, reach a dependent masked, keep a long value under an ordinary name, and a second apply is steady', async () => {
    const first = await cli(['apply', '--yes', ...p.args], { env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('2 created');
    // Never logged (debug level) nor printed either.
    expect(`${first.stdout}\n${first.stderr}`).not.toContain('SECRET');

    // The resolved secret reference and the token under a secret's name: masked, also inside a value.
    // The region is an allowlisted value of 8 characters or more, which messages mask (it may be a
    // secret): in outputs it is data, and stays.
    const bytes = stateBytes();
    // Booleans: a failure must not print the whole database.
    expect(bytes.includes(PASSWORD), 'the password in the state directory').toBe(false);
    expect(bytes.includes(TOKEN), 'the token in the state directory').toBe(false);
    const nodes = await status();
    const cred = nodes.find((n) => n.id === 'cred')!;
    expect(cred.outputs).toEqual({ id: 'cred-1', pw: '<secret>', tok: '<secret>', region: REGION, url: 'postgres://app:<secret>@db/app' });

    // A dependent that references a masked output gets the mask; the others as they are.
    const sent = readFileSync(join(p.dir, 'app.requests'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { input: unknown }).input);
    expect(sent).toEqual([{ seen: '<secret>', region: REGION, id: 'cred-1' }]);
    // Kept with its record, for its delete once it leaves the goals, as they read: masked.
    const [app] = stateRows(p.state, "SELECT snapshot FROM nodes WHERE id = 'app'") as { snapshot: string }[];
    expect((JSON.parse(app!.snapshot) as { refs: unknown }).refs).toEqual({ cred: { pw: '<secret>', region: REGION, id: 'cred-1' } });

    // The mask is the same on every pass: the read's outputs, masked, equal those recorded, so nothing
    // is updated and no record is rewritten.
    const second = await cli(['apply', '--yes', ...p.args], { env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('0 created, 0 updated');
    expect(`${second.stdout}\n${second.stderr}`).not.toContain('SECRET');
    const again = await status();
    expect(again.map((n) => [n.id, n.updatedAt])).toEqual(nodes.map((n) => [n.id, n.updatedAt]));
    expect(readFileSync(join(p.dir, 'app.requests'), 'utf8').trim().split('\n')).toHaveLength(1);
    expect(stateBytes().includes('SECRET'), 'a secret in the state directory').toBe(false);
  });
});
