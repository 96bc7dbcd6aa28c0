import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';

/**
 * A field that is one `${nodes…}` reference and nothing else takes the
 * output's own value: a number output stays a number on the way to the
 * exec protocol's `input`. Sent as the string "10", it differed from the
 * number a read reports, and every apply "corrected" the same drift.
 */
const p = tempProject('ds-exec-typed-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

// `cfg` outputs typed values; `app` records what it is sent and reads back typed state, as an API would.
const script = join(p.dir, 'res');
writeFileSync(
  script,
  `#!/bin/sh
req=$(cat)
case "$1.$2" in
  cfg.read) if [ -f ${p.dir}/cfg.made ]; then echo '{"exists":true,"state":{},"outputs":{"limit":10,"tls":true,"host":"db.local"}}'; else echo '{"exists":false}'; fi ;;
  cfg.create) touch ${p.dir}/cfg.made; echo '{"outputs":{"limit":10,"tls":true,"host":"db.local"}}' ;;
  app.read) if [ -f ${p.dir}/app.made ]; then echo '{"exists":true,"state":{"limit":10,"tls":true,"url":"https://db.local:10"}}'; else echo '{"exists":false}'; fi ;;
  app.*) touch ${p.dir}/app.made; printf '%s\\n' "$req" >> ${p.dir}/app.requests; echo '{"outputs":{}}' ;;
esac
`,
);
chmodSync(script, 0o755);
p.write(
  'goals.yaml',
  `${execGoalHead()}    - id: cfg
      type: generic.resource
      spec: { commands: { read: [${script}, cfg, read], create: [${script}, cfg, create] } }
    - id: app
      type: generic.resource
      spec:
        commands: { read: [${script}, app, read], create: [${script}, app, create], update: [${script}, app, update] }
        input: { limit: "\${nodes.cfg.outputs.limit}", tls: "\${nodes.cfg.outputs.tls}", url: "https://\${nodes.cfg.outputs.host}:\${nodes.cfg.outputs.limit}" }
`,
);

describe('whole-string references through the exec backend', () => {
  it('send the output with its type, embedded ones as text, and a second apply finds no drift', async () => {
    const env = { DESIREDSTATE_LOG_LEVEL: 'silent' };
    const first = await cli(['apply', '--yes', ...p.args], { env });
    expect(first.code).toBe(0);
    const second = await cli(['apply', '--yes', ...p.args], { env });
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('0 created, 0 updated');
    const requests = readFileSync(join(p.dir, 'app.requests'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { input: unknown });
    expect(requests.map((r) => r.input)).toEqual([{ limit: 10, tls: true, url: 'https://db.local:10' }]);
  });
});
