import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, oneFileGoal, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

const p = tempProject('ds-drift-secrets-');
p.write('app.yaml', oneFileGoal(p.root, 'dsn = host=db user=app password=CHANGEME\n'));
const daemons = trackDaemons(p.dir);
const conf = join(p.root, 'app.conf');
const restored = (): boolean => existsSync(conf) && readFileSync(conf, 'utf8').includes('CHANGEME');

// A password written by hand into a line that is no setting of its own (a libpq connection string, a
// mysql command): the drift report is logged, stored and shown by plan, each with the line diff.
describe('a secret a hand edit writes inside a line', () => {
  it('is masked in the drift log line, the stored drift report and the plan', async () => {
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', ...p.args], { cwd: p.dir });
    await d.port();
    await eventually(restored, 20_000, 'converged');

    const mark = d.lines.length;
    writeFileSync(
      conf,
      [
        'dsn = host=db user=app password=RealProdPw1',
        'backup: mysqldump -u app -pRealProdPw2 app',
        'probe: curl -s -H "X-Api-Key: RealProdPw4" https://x',
        'db: {user: app, password: RealProdPw5}',
        '<entry key="db.password">RealProdPw6</entry>',
        'map: https://maps.googleapis.com/maps/api/js?key=RealProdPw7&callback=init',
        'proxy_set_header Authorization "Bearer RealProdPw8";',
        "probe2: http POST api.example.com Authorization:'Bearer RealProdPw9'",
        '<property name="password"><value>RealProdPw10</value></property>',
        'fetch: curl -fsSLu app:RealProdPw11 https://x',
        'object: https://b.s3.amazonaws.com/o?X-Amz-Signature=RealProdPw12',
        '<property name="password">',
        '  <value>RealProdPw13</value>',
        'probe3: http -a app:RealProdPw14 api.example.com api_key==RealProdPw15 password:=RealProdPw16',
        "more_set_headers 'Authorization: Bearer RealProdPw17';",
        'add_header Cache-Control no-cache;add_header X-Api-Key RealProdPw18;',
        'requirepass RealProdPw19',
        'masterauth RealProdPw20',
        'machine api.example.com login bob password RealProdPw21',
        'db.example.com:5432:*:app:RealProdPw22',
        'cache: redis-cli -a RealProdPw23 ping',
        'password:',
        '  RealProdPw24',
        '',
      ].join('\n'),
    );
    const drift = await d.waitFor((l) => l.msg === 'drift detected', 5_000, mark);
    expect(JSON.stringify(drift)).toContain(
      [
        '-dsn = host=db user=app password=<secret>',
        '-backup: mysqldump -u app -p<secret> app',
        '-probe: curl -s -H \\"X-Api-Key: <secret>\\" https://x',
        '-db: {user: app, password: <secret>}',
        '-<entry key=\\"db.password\\"><secret></entry>',
        '-map: https://maps.googleapis.com/maps/api/js?key=<secret>&callback=init',
        '-proxy_set_header Authorization \\"<secret>\\";',
        "-probe2: http POST api.example.com Authorization:'<secret>'",
        '-<property name=\\"password\\"><value><secret></value></property>',
        '-fetch: curl -fsSLu app:<secret> https://x',
        '-object: https://b.s3.amazonaws.com/o?X-Amz-Signature=<secret>',
        '-<property name=\\"password\\">',
        '-  <value><secret></value>',
        '-probe3: http -a app:<secret> api.example.com api_key==<secret> password:=<secret>',
        "-more_set_headers 'Authorization: <secret>';",
        '-add_header Cache-Control no-cache;add_header X-Api-Key <secret>;',
        '-requirepass <secret>',
        '-masterauth <secret>',
        '-machine api.example.com login bob password <secret>',
        '-db.example.com:5432:*:app:<secret>',
        '-cache: redis-cli -a <secret> ping',
        '-password:',
        '-  <secret>',
      ].join('\\n'),
    );
    await eventually(restored, 5_000, 'the file restored');
    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(d.stderr).not.toMatch(/RealProdPw/);

    const stored = (await cli(['drift', '--format', 'json', ...p.args], { cwd: p.dir })).stdout;
    expect(stored).toContain('password=<secret>');
    expect(stored).not.toMatch(/RealProdPw/);

    writeFileSync(conf, 'dsn = host=db user=app password=RealProdPw3\n');
    for (const format of ['text', 'json']) {
      const plan = await cli(['plan', '--format', format, ...p.args], { cwd: p.dir });
      expect(plan.code).toBe(2);
      expect(plan.stdout).toContain('-dsn = host=db user=app password=<secret>');
      expect(plan.stdout).not.toMatch(/RealProdPw|CHANGEME/);
    }
  }, 60_000);
});
