import { describe, expect, it } from 'vitest';
import { maskSecretLines, maskSecretValue, maskShownSecrets, SecretMask, shownSpec } from '../../src/infra/index.ts';
import { FaultError } from '../../src/runtime/index.ts';
import type { Outputs } from '../../src/runtime/index.ts';

describe('SecretMask', () => {
  const env = { PATH: '/usr/bin:/bin', HOME: '/home/ana', LC_ALL: 'C.UTF-8', API_TOKEN: 'tok-123456', SHORT: 'on', LONGER: 'tok-123456-extra', DEPLOY_ENV: 'prod', DEBUG: 'true', DB_PASS: 'hunter', DB_URL: 'postgres://app:pw@db/app', ANSIBLE_HOST_KEY_CHECKING: 'False', API_KEY_ROTATE: 'yes' };
  const mask = SecretMask.fromEnv(env);

  it.each([
    { name: 'an allowlisted value is masked wherever it appears', text: 'token tok-123456 rejected', out: 'token <secret> rejected' },
    { name: 'a secret containing another is masked whole', text: 'x=tok-123456-extra', out: 'x=<secret>' },
    { name: 'public variables (paths, locale) are left alone', text: 'not found in /usr/bin:/bin under /home/ana (C.UTF-8)', out: 'not found in /usr/bin:/bin under /home/ana (C.UTF-8)' },
    { name: 'values too short to be a secret are left alone', text: 'switched on', out: 'switched on' },
    { name: 'short values of variables not named as secrets are left alone (DEPLOY_ENV=prod, DEBUG=true)', text: 'role prod_app: true', out: 'role prod_app: true' },
    { name: 'a short value under a secret\'s name is masked', text: 'password hunter rejected', out: 'password <secret> rejected' },
    { name: 'a setting word under a name that looks secret (ANSIBLE_HOST_KEY_CHECKING=False) is left alone', text: 'check False, rotate yes', out: 'check False, rotate yes' },
    { name: 'a long value is masked whatever its name', text: 'cannot reach postgres://app:pw@db/app', out: 'cannot reach <secret>' },
  ])('$name', ({ text, out }) => {
    expect(mask.text(text)).toBe(out);
  });

  it('masks a secret where a message quotes it in a JSON string (quotes, backslashes and newlines escaped)', () => {
    const secret = 'pa"ss\\wo\nrd';
    expect(new SecretMask([secret]).text(`printed ${JSON.stringify(`x=${secret}`)}`)).toBe('printed "x=<secret>"');
  });

  it.each([
    { name: 'the start of a secret before the cut', text: '"x=tok-12…"', out: '"x=<secret>…"' },
    { name: 'the end of a secret after the cut', text: '…-123456-extra failed', out: '…<secret> failed' },
    { name: 'both, between two cuts', text: '…3456 and tok-1…', out: '…<secret> and <secret>…' },
    { name: 'not fewer than four characters, as whole values (a word ending in a first letter)', text: 'read: wait…done', out: 'read: wait…done' },
  ])('masks what is left of a secret where a shortened message was cut (…): $name', ({ text, out }) => {
    expect(mask.text(text)).toBe(out);
  });

  it('masks each line of a secret of several lines: a message may hold only some of them, trimmed', () => {
    const key = '-----BEGIN KEY-----\r\nAAAAline1  \r\nBBBBline2\r\n-----END KEY-----';
    expect(new SecretMask([key]).text('…BBBBline2\n-----END KEY-----\nexit 1')).toBe('…<secret>\n<secret>\nexit 1');
    expect(new SecretMask([key]).text(`got ${key}`)).toBe('got <secret>');
  });

  it('masks a drift observation deeply (values and detail), and the secrets in its outputs', () => {
    const obs = mask.observation({
      status: 'drifted',
      diffs: [{ path: 'input.x', desired: { a: ['tok-123456'] }, actual: 'tok-123456', detail: '+pw=tok-123456' }],
      outputs: { url: 'tok-123456' },
    });
    expect(obs).toEqual({ status: 'drifted', diffs: [{ path: 'input.x', desired: { a: ['<secret>'] }, actual: '<secret>', detail: '+pw=<secret>' }], outputs: { url: '<secret>' } });
    expect(mask.observation({ status: 'upToDate', outputs: { pw: 'hunter' } })).toEqual({ status: 'upToDate', outputs: { pw: '<secret>' } });
  });

  // Outputs are stored, shown and handed to dependents: a secret never stays in them, but only secrets
  // are masked there, not every long allowlisted value (a region, a URL), which dependents read as data.
  it.each<{ name: string; outputs: Record<string, unknown>; out: Record<string, unknown> }>([
    { name: 'a value under a secret\'s name, however short, in a string value', outputs: { a: 'hunter', b: 'token=tok-123456;' }, out: { a: '<secret>', b: 'token=<secret>' } },
    { name: 'a secret at any depth, in keys too', outputs: { deep: { list: [{ x: 'tok-123456' }], 'tok-123456': 1 } }, out: { deep: { list: [{ x: '<secret>' }], '<secret>': 1 } } },
    { name: 'a long value under an ordinary name stays (masked in messages only), but for what looks like a secret in it (a URL\'s password)', outputs: { url: 'postgres://app:pw@db/app', region: 'eu-west-1-prod-zone', longer: 'tok-123456-extra' }, out: { url: 'postgres://app:<secret>@db/app', region: 'eu-west-1-prod-zone', longer: '<secret>-extra' } },
    { name: 'public values, setting words and other types stay', outputs: { home: '/home/ana', check: 'False', n: 10, on: true, none: null }, out: { home: '/home/ana', check: 'False', n: 10, on: true, none: null } },
  ])('masks the secrets in outputs: $name', ({ outputs, out }) => {
    // Nested values are what a backend other than exec may return; exec's own outputs are flat.
    expect(mask.outputs(outputs as Outputs)).toEqual(out);
    expect(mask.text(JSON.stringify(outputs))).not.toContain('tok-123456');
  });

  // A secret rotated in the environment: the resource still holds the old value until the update, and a
  // read prints it (a connection URL). No mask knows the old value; it was stored and handed on as it was.
  it('masks what looks like a secret in the outputs of a call handed secrets: an old value no mask knows', () => {
    const run = new SecretMask([]).with(['new-pw-2']);
    const outputs = { conn: 'postgres://app:old-pw-1@db/x', dsn: 'host=db\npassword=old-pw-1\n', json: '{"user":"app","password":"old-pw-1"}', plain: 'app@db' };
    expect(run.outputs(outputs)).toEqual({ conn: 'postgres://app:<secret>@db/x', dsn: 'host=db\npassword=<secret>\n', json: '{"user":"app","password":"<secret>"}', plain: 'app@db' });
    expect(run.outputs(run.outputs(outputs))).toEqual(run.outputs(outputs));
    // Only names that say secret: the rest is data the nodes that reference it receive (a masked one would change their spec).
    const data = { next: 'GET /search?sort_key=name&page=2', item: '/v1/items?api_key_id=12345&region=eu', opts: 'options: bypass=1', cmd: 'mysql -u root -psecret db' };
    expect(run.outputs(data)).toEqual({ ...data, cmd: 'mysql -u root -p<secret> db' });
    // A call handed no secret: outputs are data, left as they are.
    expect(new SecretMask([]).outputs(outputs)).toEqual(outputs);
  });

  it('masks a secret in a drift path (an Ansible task name is templated)', () => {
    const run = new SecretMask([]).with(['Hunter2SuperSecret']);
    const obs = run.observation({ status: 'drifted', diffs: [{ path: 'task:configure db with Hunter2SuperSecret', desired: 'unchanged', actual: 'changed' }], outputs: {} });
    expect(obs).toMatchObject({ diffs: [{ path: 'task:configure db with <secret>' }] });
  });

  it('masks values added for a run (resolved secret references) in outputs, whatever their length or name', () => {
    const run = SecretMask.fromEnv({ REGION: 'eu-west-1-prod' }).with(['pw-0815', 'eu-west-1-prod-key']);
    expect(run.outputs({ pw: 'pw-0815', key: 'eu-west-1-prod-key', region: 'eu-west-1-prod' })).toEqual({ pw: '<secret>', key: '<secret>', region: 'eu-west-1-prod' });
    // In messages the region is still masked, as it was before the run added its secrets.
    expect(run.text('in eu-west-1-prod')).toBe('in <secret>');
    expect(new SecretMask([]).with(['pw-0815']).outputs({ pw: 'pw-0815' })).toEqual({ pw: '<secret>' });
  });

  // A secret of three characters was stored and shown as it is: too short to mask inside a text, it is
  // masked where a value is exactly it.
  it('masks a secret too short to mask inside a text where a value is exactly it (an output, a drift value), and leaves the words that hold it', () => {
    const run = new SecretMask([]).with(['zq9']);
    expect(run.outputs({ pw: 'zq9', note: 'zq9 is in this word', nested: ['zq9'] } as unknown as Outputs)).toEqual({ pw: '<secret>', note: 'zq9 is in this word', nested: ['<secret>'] });
    expect(run.observation({ status: 'drifted', diffs: [{ path: 'input.pw', desired: 'zq9', actual: 'old' }], outputs: {} })).toEqual({ status: 'drifted', diffs: [{ path: 'input.pw', desired: '<secret>', actual: 'old' }], outputs: {} });
    expect(run.with(['longer-secret']).outputs({ pw: 'zq9' })).toEqual({ pw: '<secret>' });
    expect(run.text('abc zq9')).toBe('abc zq9');
  });

  it('masks outputs alike on every pass: what it masked, masked again, is unchanged', () => {
    const once = mask.outputs({ a: 'x tok-123456 y', b: 'hunter' });
    expect(mask.outputs(once)).toEqual(once);
    expect(mask.outputs({ a: 'x tok-123456 y', b: 'hunter' })).toEqual(once);
    // A secret that is part of the mask itself does not grow it pass after pass.
    const weak = new SecretMask(['secret']);
    expect(weak.outputs({ pw: 'secret', url: 'u:secret@h' })).toEqual({ pw: '<secret>', url: 'u:<secret>@h' });
    expect(weak.outputs(weak.outputs({ pw: 'secret', url: 'u:secret@h' }))).toEqual({ pw: '<secret>', url: 'u:<secret>@h' });
    expect(weak.text(weak.text('auth failed for secret'))).toBe('auth failed for <secret>');
  });

  it('walks no deeper than 100 levels: a deeper value is masked whole, never a stack overflow', () => {
    let deep: unknown = 'tok-123456';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const obs = mask.observation({ status: 'drifted', diffs: [{ path: 'input.x', desired: 1, actual: deep }], outputs: {} });
    expect(obs.status === 'drifted' && JSON.stringify(obs.diffs[0]!.actual).includes('<secret>')).toBe(true);
  });

  it('masks a thrown error of any kind into a FaultError without its cause', () => {
    const e = mask.thrown(new Error('boom tok-123456', { cause: 'tok-123456' }));
    expect(e.fault).toMatchObject({ class: 'unknown', message: 'boom <secret>' });
    expect(e.cause).toBeUndefined();
  });

  it('masks what looks like a secret in what a program said (a fault, a reason), whatever the mask knows, and keeps the rest', () => {
    const said = 'create exited 1: connect failed: postgres://app:hunter2@db/x\nDB_PASSWORD=hunter3\ntimeout after 30s';
    const shown = 'create exited 1: connect failed: postgres://app:<secret>@db/x\nDB_PASSWORD=<secret>\ntimeout after 30s';
    for (const m of [new SecretMask([]), mask]) {
      expect(m.fault({ class: 'unknown', message: said, hint: 'use password=hunter4' })).toEqual({ class: 'unknown', message: shown, hint: 'use password=<secret>' });
      expect(m.observation({ status: 'indeterminate', reason: said })).toEqual({ status: 'indeterminate', reason: shown });
      expect(m.thrown(new FaultError({ class: 'auth', message: said })).fault.message).toBe(shown);
      const plain = { class: 'transient' as const, message: 'create exited 75: try again later', hint: 'the server is busy: retry=30s, user=app' };
      expect(m.fault(plain)).toBe(plain);
    }
  });
});

// A hand edit may write a secret into a line that is no setting of its own: a drift report shows that
// line, and is logged and stored.
describe('maskSecretLines: a secret inside a line', () => {
  it.each([
    { name: 'a libpq connection string', line: 'dsn = host=db user=app password=RealProdPw1', out: 'dsn = host=db user=app password=<secret>' },
    { name: 'a quoted value, a quote escaped in it, the quotes kept', line: "conninfo host=db password='it\\'s x' port=5432", out: "conninfo host=db password='<secret>' port=5432" },
    { name: 'spaces around `=`, as libpq allows', line: 'psql "host=db password = pw-1234"', out: 'psql "host=db password = <secret>"' },
    { name: "a URL's query", line: 'url https://h/x?user=app&password=s3cr%26t&sort=asc', out: 'url https://h/x?user=app&password=<secret>&sort=asc' },
    { name: 'an ODBC connection string', line: 'Server=x;User Id=a;Password=odbc-pw;Database=d;', out: 'Server=x;User Id=a;Password=<secret>;Database=d;' },
    { name: 'a `;` inside a password, not followed by a setting', line: 'Server=x;Password=pa;ss;Database=d', out: 'Server=x;Password=<secret>;Database=d' },
    { name: 'a JDBC URL', line: 'url: jdbc:sqlserver://db;user=app;password=jdbc-pw;encrypt=true', out: 'url: jdbc:sqlserver://db;user=app;password=<secret>;encrypt=true' },
    { name: 'a name holding a secret word, as at the start of a line', line: 'opts sslmode=require api_key=k-123 password_min_length = 8', out: 'opts sslmode=require api_key=<secret> password_min_length = <secret>' },
    { name: 'an XML attribute', line: '<x password="attr-pw" other="1"/>', out: '<x password="<secret>" other="1"/>' },
    { name: 'an XML setting named by its key', line: '<add key="Password" value="xml-pw"/>', out: '<add key="Password" value="<secret>"/>' },
    { name: 'a Spring property named by its name', line: '<property name="db.password" value="spring-pw"/>', out: '<property name="db.password" value="<secret>"/>' },
    { name: 'a connection string in an attribute', line: '<add name="Db" connectionString="Server=x;Password=cs-pw;"/>', out: '<add name="Db" connectionString="Server=x;Password=<secret>;"/>' },
    { name: "mysql's glued -p", line: 'mysql -u root -pHunter2x db', out: 'mysql -u root -p<secret> db' },
    { name: "mariadb-dump's, quoted", line: "/usr/bin/mariadb-dump -p'a b' db | gzip", out: "/usr/bin/mariadb-dump -p'<secret>' db | gzip" },
    { name: "sshpass's -p, not the port of the ssh it runs", line: 'sshpass -p Hunter2x ssh -p 2222 host', out: 'sshpass -p <secret> ssh -p 2222 host' },
    { name: "curl's -u user:password, the user kept", line: "curl -u admin:pw-1 https://x && curl --user 'admin:p w' x", out: "curl -u admin:<secret> https://x && curl --user 'admin:<secret>' x" },
    { name: "curl's -u last in a bundle of flags", line: 'curl -su user:s3cret https://x && curl -fsSLu user:s3cret https://y', out: 'curl -su user:<secret> https://x && curl -fsSLu user:<secret> https://y' },
    { name: "curl's -u, the password in quotes glued to the user (kept)", line: "curl -u admin:'p w' https://x", out: "curl -u admin:'<secret>' https://x" },
    { name: 'an option whose value ends in a part in quotes, masked whole', line: "app --password=abc'd ef' -v", out: 'app --password=<secret> -v' },
    { name: 'a CRLF line, its CR kept', line: "a password='open\r", out: "a password='<secret>\r" },
    { name: 'XML attributes named by their words', line: '<x sort_key="name" apiKey="k-1"/><entry key="timeout"/><add key="SortKey" value="name"/>', out: '<x sort_key="name" apiKey="<secret>"/><entry key="timeout"/><add key="SortKey" value="name"/>' },
    { name: 'options named by their words, of keytool and openssl too', line: 'app --sort-key name --keyboard us --storepass ks-pw -passin pass:pw1', out: 'app --sort-key name --keyboard us --storepass <secret> -passin <secret>' },
    { name: "mysql's glued -p, the database after it kept (no option named …secret…)", line: 'mysql -u root -psecret db', out: 'mysql -u root -p<secret> db' },
    { name: "mysqldump's, a password ending in a secret word", line: 'mysqldump -pmytoken app > app.sql', out: 'mysqldump -p<secret> app > app.sql' },
    { name: 'an option after a flag, which is no value of the flag', line: 'app -v --token=tok-1 --verbose --password pw-1 --offset -5', out: 'app -v --token=<secret> --verbose --password <secret> --offset -5' },
    { name: 'an option after a one-letter flag', line: 'app -v --token=x', out: 'app -v --token=<secret>' },
    { name: "a secret option's value that starts with `-` and a letter", line: 'vault login --token -hunter2Token', out: 'vault login --token <secret>' },
    { name: "mysqladmin's --password, a value that looks like an option", line: 'mysqladmin --password -Xhunter2abc', out: 'mysqladmin --password <secret>' },
    { name: 'an API key that starts with `-`', line: 'app --api-key -AbCdEf123', out: 'app --api-key <secret>' },
    { name: "an option after a flag whose name holds a secret word, which is no value of the flag (helm's --pass-credentials)", line: 'helm repo add r https://x --username u --pass-credentials --password hunter2', out: 'helm repo add r https://x --username u --pass-credentials --password <secret>' },
    { name: "an option after psql's --no-password", line: 'psql --no-password --password hunter2', out: 'psql --no-password --password <secret>' },
    { name: "an option after gh's --with-token", line: 'gh auth login --with-token --token abc', out: 'gh auth login --with-token --token <secret>' },
    { name: 'an option after a secret-named option given no value', line: 'app --token --password pw', out: 'app --token --password <secret>' },
    { name: "redis-cli's -a and --pass", line: 'redis-cli -h cache -a S3cretRedis1 ping && /usr/bin/redis-cli --pass "a b" get k', out: 'redis-cli -h cache -a <secret> ping && /usr/bin/redis-cli --pass "<secret>" get k' },
    { name: 'a .netrc password, after the machine and login on its line', line: 'machine api.example.com login bob password S3cretNetrc1', out: 'machine api.example.com login bob password <secret>' },
    { name: "a .netrc password of the default machine, passwd and in quotes, a CRLF's CR kept", line: 'default login anonymous passwd "a b" account x\r', out: 'default login anonymous passwd "<secret>" account x\r' },
    { name: 'a .netrc password after a login on a line of its own', line: '  login bob password S3cretNetrc2', out: '  login bob password <secret>' },
  ])('masks $name', ({ line, out }) => {
    expect(maskSecretLines([line])).toEqual([out]);
  });

  it.each([
    { name: 'settings of other names', line: 'dsn = host=db user=app port=5432 sslmode=require' },
    { name: 'a query of other names', line: 'https://h/search?q=password&sort=asc' },
    { name: 'a setting word under a secret\'s name, an empty value, a value masked already', line: 'x auth=none password="" token=<secret>' },
    { name: 'a comparison', line: 'if password == x or token =~ /y/' },
    { name: 'a flag', line: 'app --no-password-prompt' },
    { name: 'options after flags, none of them secret', line: 'app -s -H -v --sort-key -k x' },
    { name: 'an XML setting of another name', line: '<add key="ApiBaseUrl" value="https://x"/>' },
    { name: "mysql's -p asking for the password (db is a database)", line: 'mysql -u root -p db' },
    { name: 'a -p of other commands (a port, a flag)', line: 'ssh -p 2222 host; tar -pcf x.tar x; mysql.service -pX' },
    { name: 'curl -u without a password (curl asks)', line: 'curl -u admin https://x' },
    { name: 'curl with a bundle of flags and no -u in it', line: 'curl -sL https://x && curl -fsSL -o /tmp/u https://y' },
    { name: "a URL's query with a key's id", line: '…/v1/items?api_key_id=12345&region=eu' },
    { name: 'a request with a sort key', line: 'GET /search?sort_key=name&page=2' },
    { name: 'a setting in a value whose name holds PASS', line: 'options: bypass=1' },
    { name: 'an XML element and a JSON pair whose names hold KEY', line: '<monkey>m</monkey> {"sort_key": "name"}' },
    { name: "redis-cli's -a of nothing, another command's -a", line: 'redis-cli -a; tar -a -cf x.tgz x; redis-client -a x' },
    { name: 'a password in prose, not after a .netrc machine or login', line: 'Enter your password below, or your passwd when asked' },
    { name: 'prose whose first word is a secret\'s name', line: 'Token refresh happens every hour' },
    { name: 'a .netrc password given a setting word', line: 'machine h login u password none' },
    { name: 'five fields whose second is no port', line: 'root:x:0:0:root' },
    { name: 'four fields of a .pgpass line', line: 'db:5432:app:app' },
    { name: 'six fields of a .pgpass line', line: 'db:5432:app:app:pw:x' },
  ])('leaves $name', ({ line }) => {
    expect(maskSecretLines([line])).toEqual([line]);
  });

  // A setting's name is read by its words, not by what it contains: KEY, PASS and AUTH are inside names of data
  // too, and an output masked for one changes what the nodes that reference it receive.
  it.each(['requirepass', 'masterauth', 'password', 'db_password', 'dbPassword', 'DB.PASSWORD', 'PGPASSWORD', 'pass', 'PWD', 'passphrase', 'client_secret', 'clientSecret', 'access_token', 'csrftoken', 'credentials', 'creds', 'passout', 'api_key', 'apiKey', 'APIKey', 'X-Api-Key', 'private_key', 'REDISCLI_AUTH', 'PHPSESSID', 'session_id', 'password_min_length'])(
    'masks a setting inside a line whose name has a secret\'s words: %s',
    (name) => {
      expect(maskSecretLines([`x ${name}=s3cr3t-v y`])).toEqual([`x ${name}=<secret> y`]);
    },
  );

  it.each(['api_key_id', 'sort_key', 'sortKey', 'bypass', 'keyboard', 'passenger', 'monkey', 'key', 'author', 'auth_url', 'max_tokens', 'session_timeout', 'cookie_domain', 'OLDPWD'])(
    'leaves a setting inside a line whose name holds a secret word only inside another: %s',
    (name) => {
      expect(maskSecretLines([`x ${name}=value-1 y`])).toEqual([`x ${name}=value-1 y`]);
    },
  );

  // An HTTP header given to a command (curl, wget, ab): its value is masked where the header's name says secret.
  it.each([
    { line: 'curl -H "X-Api-Key: s3cr3tvalue123" https://x', out: 'curl -H "X-Api-Key: <secret>" https://x' },
    { line: "curl -H 'Authorization: Bearer abcdef123456' https://x", out: "curl -H 'Authorization: <secret>' https://x" },
    { line: 'curl --header "Cookie: sid=abc123; theme=dark" -H X-Auth-Token:tok-1 x', out: 'curl --header "Cookie: <secret>" -H X-Auth-Token:<secret> x' },
    { line: "wget --header='Proxy-Authorization: Basic YWxhZGRpbg==' x", out: "wget --header='Proxy-Authorization: <secret>' x" },
    { line: 'curl -sS -H "X-Api-Key: k-1" x', out: 'curl -sS -H "X-Api-Key: <secret>" x' },
    { line: 'curl -s -H "X-Api-Key: k" x', out: 'curl -s -H "X-Api-Key: <secret>" x' },
    { line: "curl -sH \"X-Api-Key: k-1\" -sSLH 'Authorization: Bearer t' x", out: "curl -sH \"X-Api-Key: <secret>\" -sSLH 'Authorization: <secret>' x" },
    { line: 'curl -sH "Accept: text/plain" --xH "X-Api-Key: k" x', out: 'curl -sH "Accept: text/plain" --xH "X-Api-Key: k" x' },
    { line: 'curl -H "Content-Type: application/json" -H "X-Api-Key-Id: 42" -H "Author: ana" -H @headers.txt x', out: 'curl -H "Content-Type: application/json" -H "X-Api-Key-Id: 42" -H "Author: ana" -H @headers.txt x' },
    { line: 'curl -H "Authorization: <secret>" -H "X-Token: none" x', out: 'curl -H "Authorization: <secret>" -H "X-Token: none" x' },
    { line: "curl -H Authorization:'Bearer abc123' x", out: "curl -H Authorization:'<secret>' x" },
    // HTTPie's and xh's request items: a header glued to its value, or the whole item in quotes.
    { line: "http POST api.example.com Authorization:'Bearer abc123'", out: "http POST api.example.com Authorization:'<secret>'" },
    { line: 'https api.example.com X-API-Key:abc123 Cookie:sid=abc', out: 'https api.example.com X-API-Key:<secret> Cookie:<secret>' },
    { line: `/usr/bin/xh :3000/x 'X-Api-Key: abc123' | jq . && xhs x "Proxy-Authorization:Basic YWxh"`, out: `/usr/bin/xh :3000/x 'X-Api-Key: <secret>' | jq . && xhs x "Proxy-Authorization:<secret>"` },
    { line: 'http GET example.com Accept:application/json localhost:8080 X-Api-Key-Id:42 Authorization:', out: 'http GET example.com Accept:application/json localhost:8080 X-Api-Key-Id:42 Authorization:' },
    // Their other request items: a query's parameter (`==`, a query's key too), a raw JSON field (`:=`), a JSON string field (`=`).
    { line: `http example.com api_key==s3cret page==2 password:=s3cret count:=3 token:='"x"' 'secret:=1' key==AIza1`, out: `http example.com api_key==<secret> page==2 password:=<secret> count:=3 token:='<secret>' 'secret:=<secret>' key==<secret>` },
    { line: 'xh POST example.com password=s3cret name=app token:=null sort_key==name X-Api-Key:=x', out: 'xh POST example.com password=<secret> name=app token:=null sort_key==name X-Api-Key:=<secret>' },
    // Their -a user:password, as curl's -u: the user kept; without a password HTTPie asks for one.
    { line: "http -a user:s3cret example.com && xh --auth user:'p w' x && http --auth=user:s3cret x && https -va admin:pw x", out: "http -a user:<secret> example.com && xh --auth user:'<secret>' x && http --auth=user:<secret> x && https -va admin:<secret> x" },
    { line: 'http -a user example.com -A basic', out: 'http -a user example.com -A basic' },
    // Not after such a command: a URL, a time, a word of prose.
    { line: 'echo http://x Authorization:abc123; at 12:30 Cookie:abc123; https', out: 'echo http://x Authorization:abc123; at 12:30 Cookie:abc123; https' },
  ])('reads a header given to a command by its name: $line', ({ line, out }) => {
    expect(maskSecretLines([line])).toEqual([out]);
  });

  // A web server's directive that sets a header (nginx, Apache, HAProxy): its value is masked where the header's name says secret.
  it.each([
    { line: 'proxy_set_header Authorization "Bearer abc123";', out: 'proxy_set_header Authorization "<secret>";' },
    { line: '  add_header X-Api-Key abc123;', out: '  add_header X-Api-Key <secret>;' },
    { line: 'RequestHeader set Authorization "Bearer abc123"', out: 'RequestHeader set Authorization "<secret>"' },
    { line: "Header always set Cookie 'sid=abc; theme=dark' env=x", out: "Header always set Cookie '<secret>' env=x" },
    { line: 'http-request set-header Proxy-Authorization "Basic YWxh"', out: 'http-request set-header Proxy-Authorization "<secret>"' },
    { line: 'location / { grpc_set_header X-Auth-Token tok-1; proxy_set_header Host $host; }', out: 'location / { grpc_set_header X-Auth-Token <secret>; proxy_set_header Host $host; }' },
    { line: 'proxy_set_header Host $host;', out: 'proxy_set_header Host $host;' },
    { line: 'add_header Cache-Control no-cache; add_header X-Api-Key-Id 42;', out: 'add_header Cache-Control no-cache; add_header X-Api-Key-Id 42;' },
    { line: 'proxy_set_header Authorization ""; RequestHeader unset Authorization', out: 'proxy_set_header Authorization ""; RequestHeader unset Authorization' },
    // nginx's headers-more module: a header as one argument, as curl's -H takes it, after the directive's own options.
    { line: "more_set_headers 'Authorization: Bearer s3cret';", out: "more_set_headers 'Authorization: <secret>';" },
    { line: 'location / { more_set_input_headers -r "X-Api-Key: s3cret" \'Cookie: a=1; b=2\'; }', out: 'location / { more_set_input_headers -r "X-Api-Key: <secret>" \'Cookie: <secret>\'; }' },
    { line: "more_set_headers -s 404 -t 'text/html' 'Server: nginx' X-Auth-Token:tok-1;more_set_headers X-Api-Key:k;", out: "more_set_headers -s 404 -t 'text/html' 'Server: nginx' X-Auth-Token:<secret>;more_set_headers X-Api-Key:<secret>;" },
    { line: "more_set_headers 'Server: nginx'; more_clear_headers 'X-Api-Key';", out: "more_set_headers 'Server: nginx'; more_clear_headers 'X-Api-Key';" },
    // A `;` ends nginx's directive, and the next may follow it without a blank; to Apache a `;` is part of a value.
    { line: 'add_header X-Api-Key abc;add_header Cookie c;', out: 'add_header X-Api-Key <secret>;add_header Cookie <secret>;' },
    { line: 'add_header Cache-Control no-cache;add_header X-Api-Key abc;', out: 'add_header Cache-Control no-cache;add_header X-Api-Key <secret>;' },
    { line: 'Header set Cookie sid=abc;theme=dark', out: 'Header set Cookie <secret>' },
  ])('reads a header a web server\'s directive sets by its name: $line', ({ line, out }) => {
    expect(maskSecretLines([line])).toEqual([out]);
  });

  // A YAML (or JavaScript) flow mapping: a value ends at `,` or `}` unless quoted.
  it.each([
    { line: 'db: {user: app, password: hunter2pass}', out: 'db: {user: app, password: <secret>}' },
    { line: "- { user: a, password: 'x y', port: 5432 }", out: "- { user: a, password: '<secret>', port: 5432 }" },
    { line: `cfg = {db: {user: a, "apiKey": x y}, token: "t,1"}`, out: `cfg = {db: {user: a, "apiKey": <secret>}, token: "<secret>"}` },
    { line: "{pass: 'it''s', n: 1}\r", out: "{pass: '<secret>', n: 1}\r" },
    { line: '{user: app, sort_key: name, password: null, token: {a: b}, secret: [x]}', out: '{user: app, sort_key: name, password: null, token: {a: b}, secret: [x]}' },
    { line: 'echo ${DB_PASSWORD:-changeme}, password: not-in-a-map', out: 'echo ${DB_PASSWORD:-changeme}, password: not-in-a-map' },
    { line: "{password:'hunter2', user: 'a'}", out: "{password:'<secret>', user: 'a'}" },
    { line: `node -e 'connect({user:"app",password:"hunter2"})'`, out: `node -e 'connect({user:"app",password:"<secret>"})'` },
    { line: 'echo {a: ${PASSWORD:-x}} {pass:-x, token:x}', out: 'echo {a: ${PASSWORD:-x}} {pass:-x, token:x}' },
    { line: '{"password": "<secret>"} {a: 1}, password: x', out: '{"password": "<secret>"} {a: 1}, password: x' },
  ])('reads a flow mapping\'s keys by their words: $line', ({ line, out }) => {
    expect(maskSecretLines([line])).toEqual([out]);
  });

  // An XML element whose naming attribute says what it holds (Java's properties XML, Spring).
  it.each([
    { line: '<entry key="password">hunter2pass</entry>', out: '<entry key="password"><secret></entry>' },
    { line: "<entry key='db.apiKey' >k-1</entry><property name=\"client_secret\">s-1</property>", out: "<entry key='db.apiKey' ><secret></entry><property name=\"client_secret\"><secret></property>" },
    { line: '<entry key="timeout">30</entry><entry key="sort_key">name</entry><entry name="x" key="password"/><entry key="token">false</entry>', out: '<entry key="timeout">30</entry><entry key="sort_key">name</entry><entry name="x" key="password"/><entry key="token">false</entry>' },
    { line: '<entry type="password">p</entry>', out: '<entry type="password">p</entry>' },
    // Spring's value as a child element.
    { line: '<property name="password"><value>s3cret</value></property>', out: '<property name="password"><value><secret></value></property>' },
    { line: '  <property name="db.password">  <value type="java.lang.String">s3cret</value></property>', out: '  <property name="db.password">  <value type="java.lang.String"><secret></value></property>' },
    { line: '<entry key="password"><value>s3cret</value></entry>', out: '<entry key="password"><value><secret></value></entry>' },
    { line: '<property name="username"><value>app</value></property><bean name="passwordEncoder"><description>d</description></bean>', out: '<property name="username"><value>app</value></property><bean name="passwordEncoder"><description>d</description></bean>' },
    { line: '<entry key="password"/><value>v</value>', out: '<entry key="password"/><value>v</value>' },
  ])('reads an XML element by the name its key or name attribute gives: $line', ({ line, out }) => {
    expect(maskSecretLines([line])).toEqual([out]);
  });

  // Spring's common layout: the `<value>` on a line of its own, named by the start tag on the nearest line not blank before it.
  it.each([
    { name: 'a property', lines: ['<property name="password">', '    <value>s3cret</value>', '</property>'], out: ['<property name="password">', '    <value><secret></value>', '</property>'] },
    { name: 'an entry, a blank line and CRLFs between', lines: ['  <entry key="db.password">\r', '', '\t<value type="java.lang.String">s3cret</value>\r'], out: ['  <entry key="db.password">\r', '', '\t<value type="java.lang.String"><secret></value>\r'] },
    { name: 'a start tag after others on its line', lines: ['<bean id="ds"><property name="token">', '<value>t-1</value>'], out: ['<bean id="ds"><property name="token">', '<value><secret></value>'] },
    { name: 'as a line diff shows it, the value as it is and as it should be', lines: ['<property name="password">', '  <value>old-pw</value>', '  <value>new-pw</value>', '</property>', '<value>v</value>'], out: ['<property name="password">', '  <value><secret></value>', '  <value><secret></value>', '</property>', '<value>v</value>'] },
    { name: 'a property of another name', lines: ['<property name="username">', '  <value>app</value>'], out: ['<property name="username">', '  <value>app</value>'] },
    { name: 'a start tag that closes itself', lines: ['<entry key="password"/>', '<value>v</value>'], out: ['<entry key="password"/>', '<value>v</value>'] },
    { name: 'a line between', lines: ['<property name="password">', '<description>d</description>', '<value>v</value>'], out: ['<property name="password">', '<description>d</description>', '<value>v</value>'] },
    { name: 'another element than a value', lines: ['<bean name="passwordEncoder">', '  <description>d</description>', '  <ref>x</ref> <value>v</value>'], out: ['<bean name="passwordEncoder">', '  <description>d</description>', '  <ref>x</ref> <value>v</value>'] },
  ])('reads a Spring value on a line of its own by the start tag before it: $name', ({ lines, out }) => {
    expect(maskSecretLines(lines)).toEqual(out);
  });

  // YAML's block style: a key whose value is on the more indented lines below it, a plain scalar or a block scalar.
  it.each([
    { name: 'a plain scalar on the next line', lines: ['db:', '  password:', '    S3cretNextLine2', '  user: app'], out: ['db:', '  password:', '    <secret>', '  user: app'] },
    { name: 'as a line diff shows it, the value as it is and as it should be', lines: ['password:\r', '  old-pw\r', '  new-pw\r', 'user: app'], out: ['password:\r', '  <secret>\r', '  <secret>\r', 'user: app'] },
    { name: 'a quoted scalar, a blank line before it', lines: ['"apiKey":', '', '   "k-1"'], out: ['"apiKey":', '', '   <secret>'] },
    { name: 'a literal block scalar, a blank line inside it', lines: ['token: |-', '  line: 1', '', '  - two', 'next: x'], out: ['token: |-', '  <secret>', '', '  <secret>', 'next: x'] },
    { name: 'a folded block scalar', lines: ['  secret: >', '    a b', '  c: d'], out: ['  secret: >', '    <secret>', '  c: d'] },
    { name: 'a mapping below the key', lines: ['password:', '  value: x'], out: ['password:', '  value: x'] },
    { name: 'a list below the key', lines: ['secrets:', '  - a'], out: ['secrets:', '  - a'] },
    { name: 'a line not indented below the key', lines: ['password:', 'user'], out: ['password:', 'user'] },
    { name: 'a key of another name', lines: ['user:', '  app', 'sort_order: |', '  name'], out: ['user:', '  app', 'sort_order: |', '  name'] },
  ])('reads a YAML value on the lines below its key: $name', ({ lines, out }) => {
    expect(maskSecretLines(lines)).toEqual(out);
  });

  // `key` alone is a URL query's API key (Google Maps' `?key=AIza…`); elsewhere inside a line it is data.
  it.each([
    { line: '<script src="https://maps.googleapis.com/maps/api/js?key=AIzaSyA1&callback=init">', out: '<script src="https://maps.googleapis.com/maps/api/js?key=<secret>&callback=init">' },
    { line: 'url: /v1/items?region=eu&Key=k-2 and /x?v=3&amp;key=k-3&amp;cb=y', out: 'url: /v1/items?region=eu&Key=<secret> and /x?v=3&amp;key=<secret>&amp;cb=y' },
    { line: 'GET /search?sort_key=name&api_key_id=1&keys=a&key_id=2', out: 'GET /search?sort_key=name&api_key_id=1&keys=a&key_id=2' },
    { line: 'redis-cli get key=user1; echo ? key=x', out: 'redis-cli get key=user1; echo ? key=x' },
    // A pre-signed URL's signature; its session token is masked as a token, its credential (an access key id) as a credential.
    {
      line: 'https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA1%2F20240101&X-Amz-Signature=abcdef0123&X-Amz-Security-Token=FQoGZX',
      out: 'https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=<secret>&X-Amz-Signature=<secret>&X-Amz-Security-Token=<secret>',
    },
    { line: 'url: https://storage.googleapis.com/b/o?X-Goog-Date=1&X-Goog-Signature=abcdef01', out: 'url: https://storage.googleapis.com/b/o?X-Goog-Date=1&X-Goog-Signature=<secret>' },
    { line: '<a href="https://a.blob.core.windows.net/c/b?sv=2020&amp;sig=abc%2Bdef">', out: '<a href="https://a.blob.core.windows.net/c/b?sv=2020&amp;sig=<secret>">' },
    { line: 'https://d.cloudfront.net/x?Expires=1&Signature=abc~def&Key-Pair-Id=K2 /y?signature=abc', out: 'https://d.cloudfront.net/x?Expires=1&Signature=<secret>&Key-Pair-Id=K2 /y?signature=<secret>' },
    { line: 'GET /x?sort=signature_date&signature_date=1&signed=yes; gpg signature=abc', out: 'GET /x?sort=signature_date&signature_date=1&signed=yes; gpg signature=abc' },
  ])('masks a URL query\'s key or signature: $line', ({ line, out }) => {
    expect(maskSecretLines([line])).toEqual([out]);
  });

  // A setting on a line of its own (an env file's) is read by the same words, and by a last word KEY too: an
  // env file names a vendor's key so.
  it.each([
    { line: 'DB_PASSWORD=pw-1', out: 'DB_PASSWORD=<secret>' },
    { line: 'export dbPassword="pw-1"', out: 'export dbPassword=<secret>' },
    { line: 'password_min_length = 8', out: 'password_min_length = <secret>' },
    { line: 'APP_KEY=base64:abc', out: 'APP_KEY=<secret>' },
    { line: 'STRIPE_KEY: sk-1', out: 'STRIPE_KEY: <secret>' },
    { line: 'sort_key: name', out: 'sort_key: <secret>' },
    { line: 'AWS_ACCESS_KEY_ID=AKIA1', out: 'AWS_ACCESS_KEY_ID=AKIA1' },
    { line: 'author: Ana', out: 'author: Ana' },
    { line: '  "keywords": ["a"],', out: '  "keywords": ["a"],' },
    { line: 'MONKEY=banana', out: 'MONKEY=banana' },
    { line: 'max_tokens: 4096', out: 'max_tokens: 4096' },
    // A directive, as redis.conf writes one: its name the line's first word, one word or one in quotes after it.
    { line: 'requirepass S3cretRedisConf1', out: 'requirepass <secret>' },
    { line: '  masterauth S3cretMasterAuth2\r', out: '  masterauth <secret>\r' },
    { line: 'PASSWORD X', out: 'PASSWORD <secret>' },
    { line: '\ttoken  X ', out: '\ttoken  <secret>' },
    { line: 'password "X y"', out: 'password "<secret>"' },
    { line: "api_key 'k-1'", out: "api_key '<secret>'" },
    { line: 'password none', out: 'password none' },
    { line: 'Password reset failed', out: 'Password reset failed' },
    { line: 'masteruser app', out: 'masteruser app' },
    // A .pgpass line: host, port (a number or `*`), database, user and password, `\:` escaping a colon.
    { line: 'db.example.com:5432:*:app:S3cretPgpass4', out: 'db.example.com:5432:*:app:<secret>' },
    { line: '*:*:app\\:x:us\\\\er:pa\\:ss word\r', out: '*:*:app\\:x:us\\\\er:<secret>\r' },
  ])('reads a setting on a line of its own by its words: $line', ({ line, out }) => {
    expect(maskSecretLines([line])).toEqual([out]);
  });

  // Masking runs on every drifted line (and on outputs). Each pattern is tried only where a name or a command
  // starts, and reads on at most to the end of its value or command, so a line costs time in its length:
  // these finish as fast as any other line; a quadratic pass would take minutes at this size.
  it.each([
    { name: 'many settings not named as secrets', line: 'a='.repeat(500_000), out: 'a='.repeat(500_000) },
    { name: 'many `&` in a secret', line: `x token=a${'&b'.repeat(500_000)}`, out: 'x token=<secret>' },
    { name: 'a quote left open, many escaped quotes after it', line: `x password="${'\\"'.repeat(500_000)}`, out: 'x password="<secret>' },
    { name: 'many passwords to one command', line: `mysql -u root${' -pX'.repeat(250_000)}`, out: `mysql -u root${' -p<secret>'.repeat(250_000)}` },
    { name: 'a name of many words', line: `x ${'sortKey_'.repeat(120_000)}api_key=pw`, out: `x ${'sortKey_'.repeat(120_000)}api_key=<secret>` },
    { name: 'many options to sshpass', line: `sshpass${' -v'.repeat(300_000)} -p pw ssh -p 22 h`, out: `sshpass${' -v'.repeat(300_000)} -p <secret> ssh -p 22 h` },
    { name: 'many pairs in a flow mapping', line: `{${'a: b, '.repeat(150_000)}password: pw}`, out: `{${'a: b, '.repeat(150_000)}password: <secret>}` },
    { name: 'many braces', line: `${'{'.repeat(500_000)}password: pw${'}'.repeat(500_000)}`, out: `${'{'.repeat(500_000)}password: <secret>${'}'.repeat(500_000)}` },
    { name: "a flow mapping's quote left open, many escaped quotes after it", line: `{token: 'a${"''".repeat(500_000)}`, out: "{token: '<secret>" },
    { name: 'many keys in a query', line: `/x?key=a${'&key=a'.repeat(150_000)}`, out: `/x?key=<secret>${'&key=<secret>'.repeat(150_000)}` },
    { name: 'many headers', line: `curl${' -H "X-Api-Key: k"'.repeat(50_000)}`, out: `curl${' -H "X-Api-Key: <secret>"'.repeat(50_000)}` },
    { name: 'many headers after bundled flags', line: `curl${' -sH "X-Api-Key: k"'.repeat(50_000)}`, out: `curl${' -sH "X-Api-Key: <secret>"'.repeat(50_000)}` },
    { name: 'many flags before a header', line: `curl${' -s'.repeat(300_000)} -H "X-Api-Key: k"`, out: `curl${' -s'.repeat(300_000)} -H "X-Api-Key: <secret>"` },
    { name: 'many secret options, each value like an option', line: `app${' --token -x'.repeat(100_000)}`, out: `app${' --token <secret>'.repeat(100_000)}` },
    { name: 'many secret-named flags, each before another', line: `app${' --token'.repeat(120_000)} pw`, out: `app${' --token'.repeat(119_999)} --token <secret>` },
    { name: 'many pairs in a JavaScript map, no blank after a colon', line: `{${'a:"b",'.repeat(150_000)}password:"pw"}`, out: `{${'a:"b",'.repeat(150_000)}password:"<secret>"}` },
    { name: 'many header directives', line: 'add_header X-Api-Key k; '.repeat(40_000), out: 'add_header X-Api-Key <secret>; '.repeat(40_000) },
    { name: 'many nginx header directives, no blank after a `;`', line: 'add_header X-Api-Key k;'.repeat(40_000), out: 'add_header X-Api-Key <secret>;'.repeat(40_000) },
    { name: 'many headers in one headers-more directive', line: `more_set_headers${" 'X-Api-Key: k'".repeat(60_000)};`, out: `more_set_headers${" 'X-Api-Key: <secret>'".repeat(60_000)};` },
    { name: 'many headers-more directives, each with a quote left open', line: `more_set_headers 'a ${'more_set_headers "b '.repeat(60_000)}`, out: `more_set_headers 'a ${'more_set_headers "b '.repeat(60_000)}` },
    { name: 'many header directives without a value', line: `x${' proxy_set_header'.repeat(60_000)}`, out: `x${' proxy_set_header'.repeat(60_000)}` },
    { name: 'many request items of HTTPie', line: `http${" X-Api-Key:'k'".repeat(70_000)}`, out: `http${" X-Api-Key:'<secret>'".repeat(70_000)}` },
    { name: 'many request items of HTTPie, a query parameter each', line: `http${' api_key==k'.repeat(90_000)}`, out: `http${' api_key==<secret>'.repeat(90_000)}` },
    { name: "many HTTPie's -a", line: `http${' -a u:p'.repeat(130_000)}`, out: `http${' -a u:<secret>'.repeat(130_000)}` },
    { name: 'many signatures in a query', line: `/x?${'sig=a&'.repeat(150_000)}`, out: `/x?${'sig=<secret>&'.repeat(150_000)}` },
    { name: 'a Spring property of many attributes', line: `<property${' a="1"'.repeat(150_000)} name="password"><value>pw</value>`, out: `<property${' a="1"'.repeat(150_000)} name="password"><value><secret></value>` },
    { name: 'many Spring values', line: '<property name="password"><value>x</value></property>'.repeat(20_000), out: '<property name="password"><value><secret></value></property>'.repeat(20_000) },
    { name: 'a long bundle of flags before -u', line: `curl -${'s'.repeat(1_000_000)}u a:b`, out: `curl -${'s'.repeat(1_000_000)}u a:<secret>` },
    { name: 'a start tag of many attributes ending a line, its value on the next', line: `<property${' a="1"'.repeat(150_000)} name="password">\n<value>pw</value>`, out: `<property${' a="1"'.repeat(150_000)} name="password">\n<value><secret></value>` },
    { name: 'many start tags, the last ending a line', line: `${'<a b="1">x'.repeat(100_000)}<entry key="password">\n<value>pw</value>`, out: `${'<a b="1">x'.repeat(100_000)}<entry key="password">\n<value><secret></value>` },
    { name: 'many start tags never closed', line: '<a b'.repeat(250_000), out: '<a b'.repeat(250_000) },
    { name: 'many start tags that close themselves', line: '<a b/>'.repeat(170_000), out: '<a b/>'.repeat(170_000) },
    { name: 'a directive of a long value', line: `token ${'x'.repeat(1_000_000)} y`, out: `token ${'x'.repeat(1_000_000)} y` },
    { name: 'a .pgpass line of many escapes', line: `h:1:d:u${'\\:'.repeat(500_000)}`, out: `h:1:d:u${'\\:'.repeat(500_000)}` },
    { name: 'a .netrc line of many passwords', line: `machine h${' password p'.repeat(90_000)}`, out: `machine h${' password <secret>'.repeat(90_000)}` },
    { name: 'many lines below a YAML key', line: `password:\n${'  x\n'.repeat(300_000)}a: b`, out: `password:\n${'  <secret>\n'.repeat(300_000)}a: b` },
    { name: 'an XML element of many attributes', line: `<entry${' a="1"'.repeat(150_000)} key="password">pw</entry>`, out: `<entry${' a="1"'.repeat(150_000)} key="password"><secret></entry>` },
  ])('masks a 1 MB line in one pass: $name', ({ line, out }) => {
    expect(maskSecretLines(line.split('\n'))).toEqual(out.split('\n'));
  });
});

describe('maskSecretValue: a value a drift shows, walked by the keys it is under', () => {
  it.each([
    { name: 'a string and a number under a secret-named key, whole', value: { apiKey: 'k1 x', pin_code: 'ab', PASSWORD: 12345 }, key: 'x', out: { apiKey: '<secret>', pin_code: 'ab', PASSWORD: '<secret>' } },
    { name: 'a setting word, a boolean, null and an empty text kept', value: { token: ['none', true, null, ''] }, key: 'x', out: { token: ['none', true, null, ''] } },
    { name: "a list's items under the list's key, a map in it too", value: ['s-1', { password: 'p-1', host: 'db' }], key: 'secrets', out: ['<secret>', { password: '<secret>', host: '<secret>' }] },
    { name: "a map's values under a secret-named key, whatever their own keys", value: { password: { value: 'p-1' }, db: { credentials: { primary: 'c-1' } } }, key: 'x', out: { password: { value: '<secret>' }, db: { credentials: { primary: '<secret>' } } } },
    { name: "a map's or a list's under the plural of one, not a count's", value: { tokens: { github: 'ghp_x1' }, apiKeys: { stripe: 'sk_live_x1' }, passwords: ['p-1'], auths: { 'ghcr.io': { username: 'ana', auth: 'YTpi' } }, max_tokens: 4096, sort_keys: 'name' }, key: 'x', out: { tokens: { github: '<secret>' }, apiKeys: { stripe: '<secret>' }, passwords: ['<secret>'], auths: { 'ghcr.io': { username: '<secret>', auth: '<secret>' } }, max_tokens: 4096, sort_keys: 'name' } },
    { name: 'a map under such a key at the top', value: { github: 'ghp_x1' }, key: 'tokens', out: { github: '<secret>' } },
    { name: 'every value at any depth beneath a secret-named key, a setting word, a boolean and an empty text kept', value: { primary: { user: 'app', pass: 'p-1', port: 5432, rotate: 'off', ttl: '', on: true }, backup: ['b-1'] }, key: 'credentials', out: { primary: { user: '<secret>', pass: '<secret>', port: '<secret>', rotate: 'off', ttl: '', on: true }, backup: ['<secret>'] } },
    { name: 'a value under a key named as on a line of its own (STRIPE_KEY), not an identifier (AWS_ACCESS_KEY_ID)', value: { STRIPE_KEY: 'sk_live_x1', APP_KEY: 'base64:abc', AWS_ACCESS_KEY_ID: 'AKIA1', keyboard: 'us' }, key: 'env', out: { STRIPE_KEY: '<secret>', APP_KEY: '<secret>', AWS_ACCESS_KEY_ID: 'AKIA1', keyboard: 'us' } },
    { name: 'a value under such a key at the top', value: 'sk_live_x1', key: 'STRIPE_KEY', out: '<secret>' },
    { name: 'an identifier at the top', value: 'AKIA1', key: 'AWS_ACCESS_KEY_ID', out: 'AKIA1' },
    { name: 'another text, as a line diff masks it', value: 'url postgres://app:pw-1@db', key: 'dsn', out: 'url postgres://app:<secret>@db' },
  ])('$name', ({ value, key, out }) => {
    expect(maskSecretValue(value, key)).toEqual(out);
  });

  it('walks no deeper than 100 levels: a deeper value is masked whole, never a stack overflow', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    let shown = maskSecretValue(deep, 'x');
    for (let i = 0; i < 100; i++) shown = (shown as { a: unknown }).a;
    expect(shown).toBe('<secret>');
  });
});

describe('maskShownSecrets: a message that may quote a spec, masked as plan shows the spec', () => {
  const content = 'port = 8080\nDB_PASSWORD=hunter2-supersecret\napi_key: "k3y-abcdef"\nurl = postgres://app:pg-pass-123@db/app\n--token=tok-xyz9\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\n-----END PRIVATE KEY-----\nPASS=abc\ndsn = host=db password=dsn-pw-4567\n';
  const spec = { type: 'local.file', path: 'app.env', content };
  it.each([
    { name: 'a setting\'s value', message: 'Cannot convert hunter2-supersecret to a BigInt', out: 'Cannot convert <secret> to a BigInt' },
    { name: 'a whole line', message: 'no such key: DB_PASSWORD=hunter2-supersecret', out: 'no such key: DB_PASSWORD=<secret>' },
    { name: 'a quoted value, with or without its quotes', message: 'got "k3y-abcdef" then k3y-abcdef', out: 'got <secret> then <secret>' },
    { name: "a URL's password", message: 'bad url postgres://app:pg-pass-123@db/app', out: 'bad url postgres://app:<secret>@db/app' },
    { name: "an option's value", message: 'value tok-xyz9', out: 'value <secret>' },
    { name: 'a private key line', message: 'line MIIEvQIBADANBgkq', out: 'line <secret>' },
    { name: 'a secret inside a line', message: 'bad value dsn-pw-4567', out: 'bad value <secret>' },
    { name: 'the text as a JSON string quotes it', message: JSON.stringify(content.slice(12, 44)), out: '"DB_PASSWORD=<secret>\\n"' },
    { name: 'what plan does not mask is left alone', message: 'port = 8080 in app.env', out: 'port = 8080 in app.env' },
    { name: 'a line with a short secret, as plan shows it', message: 'no key PASS=abc', out: 'no key PASS=<secret>' },
    { name: 'a value too short to mask inside any text, alone (as SecretMask)', message: 'PASS is abc', out: 'PASS is abc' },
  ])('$name', ({ message, out }) => {
    expect(maskShownSecrets(spec, message)).toBe(out);
  });

  it('masks what shownSpec masks: the shown text, quoted, comes back unchanged', () => {
    const shown = shownSpec(spec).content as string;
    expect(shown).not.toContain('hunter2');
    expect(maskShownSecrets(spec, `content ${JSON.stringify(content)}`)).toBe(`content ${JSON.stringify(shown)}`);
    expect(maskShownSecrets(spec, `content ${content}`)).toBe(`content ${shown}`);
  });

  it('a type without text fields: the message as it is', () => {
    expect(maskShownSecrets({ type: 'postgres.role', name: 'DB_PASSWORD=hunter2-supersecret' }, 'hunter2-supersecret')).toBe('hunter2-supersecret');
  });
});

// A script or exec node's create showed its input as written in plan, where its drift, and a local.file create, masked it.
describe('shownSpec of a free-form input', () => {
  it('masks its values as a drift of them is: a secret setting in a text, a value under a secret\'s name, at any depth', () => {
    const spec = {
      type: 'generic.resource',
      input: { path: 'app.env', content: 'DB_PASSWORD=hunter2secret\n', db: { apiKey: 'k-0123456789', user: 'app' }, list: ['token=abcd1234efgh'] },
    };
    expect(shownSpec(spec)).toEqual({
      type: 'generic.resource',
      input: { path: 'app.env', content: 'DB_PASSWORD=<secret>\n', db: { apiKey: '<secret>', user: 'app' }, list: ['token=<secret>'] },
    });
    expect(shownSpec(spec).input).toEqual(maskSecretValue(spec.input, 'input'));
    expect(spec.input.content).toBe('DB_PASSWORD=hunter2secret\n');
  });

  it('shows a secret reference as written: it names a secret and holds none', () => {
    const spec = { type: 'generic.resource', input: { password: { fromEnv: 'PG_PASSWORD' }, nested: { token: { fromFile: 'secrets/token' } } } };
    expect(shownSpec(spec)).toEqual(spec);
  });
});
