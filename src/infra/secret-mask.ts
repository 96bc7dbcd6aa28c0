import { assertNever, escapeRegex, FaultError, toFault } from '../runtime/index.ts';
import type { Fault, FieldDiff, Observation, Outputs } from '../runtime/index.ts';
import { isSecretRef, SECRET_MASK } from './secret.ts';
import { isInfraNodeType, textFields, valueFields } from './spec.ts';
import type { InfraNodeType } from './spec.ts';

/**
 * Masks secret values in what a wrapped program said. A program that is
 * handed a secret (an API token in an allowlisted environment variable, a
 * password in a playbook's extra vars) may quote it back: an error such as
 * "auth failed with token …" becomes a fault message, which is logged,
 * stored and shown by `status`; or print it as an output, which is stored,
 * shown and handed to dependents. Pure.
 */

/** Allowlisted variables that hold no secret: paths, locale, terminal, identity. Every other one may. */
const PUBLIC_ENV_NAME = /^(PATH|HOME|USER|LOGNAME|SHELL|PWD|TMPDIR|TERM|TZ|LANG|LANGUAGE|LC_[A-Z]+|SSH_AUTH_SOCK)$/;

/** A variable whose name says it holds a secret: its value is masked however short. */
const SECRET_ENV_NAME = /TOKEN|SECRET|PASS|KEY|CRED|AUTH|PRIVATE|SESSION|COOKIE/i;

/**
 * Values at least this long are masked in messages whatever their variable is called (a connection
 * URL with a password in it); shorter ones only under a secret's name, so that `DEPLOY_ENV=prod` or
 * `DEBUG=true` does not blot "prod" and "true" out of every message. Not in outputs: there a long
 * value under an ordinary name (`REGION=eu-west-1-prod`) is data (see `SecretMask.outputs`).
 */
const ALWAYS_MASKED_LENGTH = 8;

/**
 * Short values that are settings, not secrets, whatever their variable is called
 * (`ANSIBLE_HOST_KEY_CHECKING=False` has KEY in its name): masking them would blot
 * every "false" out of a message, and no password is "yes".
 */
const SETTING_WORD = /^(true|false|yes|off|none|null)$/i;

/**
 * A setting's name that says it holds a secret, read by its words (`nameWords`: `db_password`,
 * `dbPassword` and `X-Api-Key` alike), not by what it contains: SECRET_ENV_NAME's KEY, PASS or AUTH
 * are inside `sort_key`, `bypass` and `author`, whose values are data (an output holding one is
 * handed on masked). Secret when a word is, or ends in (`PGPASSWORD`, `csrftoken`), one of the
 * long secret words, or a password setting of keytool (`-storepass`) or Redis (`requirepass`,
 * `masterauth`); when a word is one of the short ones, which end other words too (`bypass`,
 * `OLDPWD`), or a password option of openssl (`-passin`); when the name
 * ends in a word that names a secret only there (`REDISCLI_AUTH`, not `auth_url`; `Cookie`, not
 * `cookie_domain`), in a key of a secret kind (`api_key`, not `api_key_id` nor `sort_key`), or in a
 * session id (`PHPSESSID`). Linear: each alternative is a fixed run of letters.
 */
const SECRET_NAME = new RegExp(
  [
    String.raw`(?:password|passwd|passphrase|secrets?|token|credentials?|apikey|(?:store|key|require)pass|masterauth)(?:_|$)`,
    String.raw`(?:^|_)(?:pwd|pass(?:in|out)?|creds?)(?:_|$)`,
    String.raw`(?:^|_)(?:auth|authorization|cookie)$`,
    String.raw`(?:api|access|private|signing|encryption|master|auth|session)_?key$`,
    String.raw`sess(?:ion)?_?id$`,
  ].join('|'),
);

/**
 * A setting's name as its words, lowercased and joined by `_`: split where anything but a letter
 * is (`_`, `-`, `.`, a digit) and where camelCase starts a word (`dbPassword`, `APIKey`).
 */
function nameWords(name: string): string {
  return name
    .replace(/([a-z\d])(?=[A-Z])|([A-Z])(?=[A-Z][a-z])/g, '$1$2_')
    .replace(/[^A-Za-z]+/g, '_')
    .toLowerCase();
}

/**
 * A setting on a line of its own is a secret's also when its name ends in the word key: an env
 * file names a vendor's key so (`APP_KEY=`, `STRIPE_KEY=`). Not inside a line, where a key is more
 * often a sort or map key (`?sort_key=name`).
 */
const LINE_KEY_NAME = /(?:^|_)key$/;

/**
 * `NAME=value`, `name: value`, `export NAME="value"`, `"name": value`: a setting in a file, its
 * name (group 3) and its value (group 4), up to a CR a CRLF file leaves at the line's end (group 5).
 */
const ASSIGNMENT = /^(\s*(?:export\s+)?(["']?)([A-Za-z_][\w.-]*)\2\s*[:=]\s*)(\S[^\r\n]*?)(\r?)$/;

/**
 * `requirepass value`, `PASSWORD "value"`: a directive, as redis.conf and many others write a
 * setting, its name the line's first word: what comes before its value (group 1), its name (group
 * 2), its value (group 3: one word, or in quotes; so that a line of prose is none) and a CR (group 4).
 */
const DIRECTIVE = /^(\s*([A-Za-z_][\w.-]*)[ \t]+)("[^"\r\n]*"|'[^'\r\n]*'|[^\s"']\S*)[ \t]*(\r?)$/;

/**
 * A line of a .pgpass file, `host:port:database:user:password`, each field with `\:` and `\\`
 * escaped, the port a number or `*` (so that a time or a YAML pair is none): what comes before the
 * password (group 1), the password (group 2) and a CR (group 3).
 */
const PGPASS_LINE = /^((?:[^\s:\\]|\\.)+:(?:\d+|\*):(?:[^\s:\\]|\\.)+:(?:[^\s:\\]|\\.)+:)((?:[^:\\\r\n]|\\.)+)(\r?)$/;

/**
 * A YAML key whose value is on the lines below it: nothing after its colon, or a block scalar's
 * indicator (`password: |`, `>-`): its indentation (group 1), its name (group 3) and the indicator
 * (group 4).
 */
const YAML_BLOCK_KEY = /^([ \t]*)(["']?)([A-Za-z_][\w.-]*)\2[ \t]*:(?:[ \t]+([|>][1-9+-]{0,2}))?[ \t]*\r?$/;

/** A line below a YAML key that begins no scalar: a list's item, a mapping's key, a flow collection, an anchor, an alias, a tag, a comment. */
const YAML_NOT_SCALAR = /^[ \t]*(?:[-?:](?:[ \t]|\r?$)|[#[{&*!%@`]|[^\r]*?:(?:[ \t]|\r?$))/;

/**
 * A line of a .netrc file, which names a machine (or the default one) and its login, password and
 * account, one token after another, on one line or across several.
 */
const NETRC_LINE = /^\s*(?:machine|default|login)(?:\s|$)/;

/** A .netrc password (`password …`, `passwd …` to some readers) anywhere in such a line: the token and the blanks after it (group 1), and the value (group 2). */
const NETRC_PASSWORD = /((?:^|\s)passw(?:or)?d\s+)("[^"]*"|\S+)/g;

/** `"name": "value"` anywhere in a line (JSON, one or more pairs): the quoted name (group 2) and value (group 3). */
const JSON_PAIR = /("([A-Za-z_][\w.-]*)"\s*:\s*)"((?:[^"\\]|\\.)*)"/g;

/** A URL's password (`postgres://app:PASSWORD@db/app`, `redis://:PASSWORD@cache`): what comes before it (group 1) and it (group 2). */
const URL_PASSWORD = /((?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s:@/]*:)([^\s@/]+)(?=@)/g;

/** An XML start tag with attributes, not one that closes itself. */
const XML_START_TAG = String.raw`<[A-Za-z_][\w.:-]*\s[^<>]*(?<!\/)>`;

/**
 * A start tag (XML_START_TAG) whose attributes name the `<value>` element that follows it (Spring's
 * `<property name="password"><value>…</value>`, `<entry key="password"><value>…`): read with that
 * element, so that its naming attribute (`namedSecret`) names the value's text.
 */
const XML_VALUE_PARENT = String.raw`${XML_START_TAG}\s*(?=<value[\s>])`;

/**
 * A line that ends in a start tag (XML_START_TAG, group 1), which names a `<value>` element that
 * begins the next line not blank (XML_VALUE_LINE), as Spring's files are mostly laid out:
 * `<property name="password">`, then `<value>…</value>` indented below it.
 */
const XML_VALUE_PARENT_LINE = new RegExp(String.raw`(${XML_START_TAG})\s*$`);
const XML_VALUE_LINE = /^\s*<value[\s>]/;

/**
 * `<password>value</password>`: an XML element's start tag, after the one that names it if it is a
 * `<value>` (XML_VALUE_PARENT) (group 1), its name (group 2) and its text (group 3).
 */
const XML_ELEMENT = new RegExp(String.raw`((?:${XML_VALUE_PARENT})?<([A-Za-z_][\w.:-]*)(?:\s[^<>]*)?>)([^<]+)(?=<\/\2>)`, 'g');

/**
 * In a flow mapping (`{user: app, password: x}`, YAML's or JavaScript's), a key where a pair
 * begins, after `{` or `,`: quoted (group 2) or plain (group 3; its `:` followed by a blank, as YAML
 * reads one, or by a quote, as JavaScript writes one: `{password:'x'}`; so that `${PASSWORD:-x}` is
 * no pair); else a brace, which opens or closes a mapping.
 */
const FLOW_TOKEN = /[{,]\s*(?:(["'])([A-Za-z_][\w.-]*)\1\s*:|([A-Za-z_][\w.-]*)\s*:(?![^\s"']))\s*|[{}]/g;

/**
 * A flow mapping's value where FLOW_TOKEN leaves off: in quotes (`'it''s'`, `"a\"b"`; one left open
 * runs to the line's end), what is inside them in group 1 or 2; else up to a `,`, a bracket or a
 * brace, blanks at its end aside. None where a mapping or a list is the value. Linear: the words
 * and the blanks between them are told apart by their first character.
 */
const FLOW_VALUE = /'((?:[^'\r\n]|'')*)'?|"((?:[^"\\\r\n]|\\.)*)"?|[^\s,{}[\]]+(?:[ \t]+[^\s,{}[\]]+)*/y;

/** A command's argument: in quotes, or up to a blank, a part in quotes glued at its end (`Authorization:'Bearer …'`, `user:'p w'`). */
const ARGUMENT = String.raw`"[^"]*"|'[^']*'|[^\s"']+(?:"[^"]*"|'[^']*')?`;

/** A command's argument (ARGUMENT) after a blank: the blank (group 1) and the argument (group 2). */
const COMMAND_ARGUMENT = new RegExp(String.raw`(\s)(${ARGUMENT})`, 'g');

/**
 * The command line of HTTPie or xh (`http POST api.example.com Authorization:'Bearer …'`), up to
 * where a shell ends it: their request items give a header as one argument, `Name:value` glued or
 * `'Name: value'` in quotes, and a query's parameter or a JSON field so too (REQUEST_ITEM). Only
 * after such a command: elsewhere a `name:value` is a port, a time or a mapping's pair. The command
 * is followed by a blank, so that a URL (`http://…`) is none.
 */
const HTTP_ITEMS_COMMAND = /(?<![\w.-])(?:https?|xhs?)(?=[ \t])[^|;&\r\n]*/g;

/** `--password=value`, `--api-key value`: a command-line option as written (group 2), its name (group 3) and its value (group 4). */
const OPTION = new RegExp(String.raw`((?:^|\s)(--?([A-Za-z][\w-]*))(?:=|\s+))(${ARGUMENT})`, 'g');

/** An argument that is an option itself (`-H`, `--token=…`), or a value that looks like one (`-hunter2Token`). */
const OPTION_LIKE = /^--?[A-Za-z]/;

/**
 * A URL query's parameter that holds a secret there, by its words (`nameWords`), where elsewhere
 * inside a line such a name is data: an API's `key` (Google Maps' `?key=AIza…`; `get key=user1` is
 * data), a pre-signed URL's signature (S3's `X-Amz-Signature`, Google Cloud Storage's
 * `X-Goog-Signature`, CloudFront's `Signature`, an Azure SAS's `sig`; a package's signature is
 * public), which lets whoever holds the URL do what it does until it expires. Not `signature_date`;
 * `X-Amz-Credential`, an access key id and its scope, is no signature (its word credential masks it).
 */
const QUERY_SECRET_NAME = /^(?:key|sig)$|(?:^|_)signature$/;

/**
 * `name=value` inside a line: a libpq connection string (`host=db password=…`), a URL's query
 * (`?user=app&password=…`), an ODBC or JDBC one (`Server=x;Password=…;`), an XML attribute
 * (`password="…"`). The name (group 1) stands alone: `--password=` is an option (OPTION). Not `==`
 * nor `=~`. The value is read where the match ends (SETTING_VALUE). Linear: a name is tried only
 * where one starts, and gives back at most its own length.
 */
const INLINE_SETTING = /(?<![\w.-])([A-Za-z_][\w.-]*)[ \t]*=(?![=~])[ \t]*/g;

/**
 * A setting's value where INLINE_SETTING leaves off: in quotes (`'x y'`, `"x"`; a backslash escapes
 * a quote, as libpq reads it; a quote left open runs to the line's end), what is inside them in
 * group 1 or 2; else up to a blank, a quote, or a `&` or `;` that begins another setting (`&page=2`,
 * `;Database=x`), that is HTML's `&amp;`, or ends the text: one inside a password (`pa;ss`) is
 * kept in it. Linear: the look ahead after a `&` or `;` reads at most the value's next run of name
 * characters.
 */
const SETTING_VALUE = /'((?:[^'\\\r\n]|\\.)*)'?|"((?:[^"\\\r\n]|\\.)*)"?|(?:[^\s"'&;]|[&;](?![A-Za-z_][\w.-]*=|amp;)(?=[^\s"']))+/y;

/**
 * `-H`, `--header`: the options curl, wget and other HTTP clients take a request's header in, as
 * written; `-H` also last in a bundle of one-letter flags (`curl -sH …`).
 */
const HEADER_OPTION = /^(?:-[A-Za-z]*H|--header)$/;

/** An HTTP header (`X-Api-Key: value`): its name (group 1), the colon (group 2) and its value (group 3). */
const HEADER = /^([A-Za-z][\w-]*)(\s*:\s*)(\S.*)$/;

/**
 * A request item of HTTPie or xh: its name (group 1), the separator that says what it is (group 2):
 * `==` a URL query's parameter (`api_key==…`), `:=` a raw JSON field (`password:=…`), `=` a JSON
 * string field, else a header as HEADER reads one; and its value (group 3).
 */
const REQUEST_ITEM = /^([A-Za-z][\w-]*)(==|:=|=|\s*:\s*)(\S.*)$/;

/**
 * A web server's directive that sets an HTTP request's or response's header (`directive`: the
 * directive's words), as its manual writes it: what comes before the header's name (group 1), its
 * name (group 2, read as HEADER's), the blanks after it (group 3) and its value (group 4: in quotes,
 * else as `value` reads one).
 */
function headerDirective(directive: string, value: string): RegExp {
  return new RegExp(String.raw`((?:^|[\s;{])(?:${directive})\s+)([A-Za-z][\w-]*)(\s+)("[^"]*"|'[^']*'|${value})`, 'g');
}

/**
 * The web servers' directives that set a header (`headerDirective`): nginx's `proxy_set_header
 * Authorization "Bearer …";`, `add_header X-Api-Key …;` (`grpc_set_header`, `add_trailer` too), whose
 * value a `;` ends, the next directive maybe right after it (`add_header A a;add_header B b;`);
 * Apache's `RequestHeader set Authorization "…"`, `Header always set …` (and add, append, merge,
 * setifempty) and HAProxy's `http-request set-header …`, to which a `;` is part of a value
 * (`sid=abc;theme=dark`).
 */
const HEADER_DIRECTIVES: readonly RegExp[] = [
  headerDirective(String.raw`(?:proxy|grpc)_set_header|add_header|add_trailer`, String.raw`[^\s"';]+`),
  headerDirective(String.raw`(?:RequestHeader|Header(?:\s+(?:always|onsuccess))?)\s+(?:set|add|append|merge|setifempty)|http-(?:request|response)\s+(?:set|add)-header`, String.raw`[^\s"']+`),
];

/**
 * nginx's headers-more directives, `more_set_headers 'Authorization: Bearer …';` and
 * `more_set_input_headers`, up to the `;` that ends them (not one in quotes): each gives a header as
 * one argument, as curl's `-H` does, after options of its own (`-s 404`, `-t text/html`).
 */
const MORE_HEADERS_DIRECTIVE = /(?<![\w.-])more_set(?:_input)?_headers(?=\s)(?:[^;"'\r\n]|"[^"]*"|'[^']*')*/g;

/**
 * Where each argument may be an HTTP header given in one (`headerArgumentSecret`), read as `item`
 * reads one: after HTTPie or xh (HTTP_ITEMS_COMMAND), a request item, and in nginx's headers-more
 * directives.
 */
const HEADER_ARGUMENTS: readonly { command: RegExp; item: RegExp }[] = [
  { command: HTTP_ITEMS_COMMAND, item: REQUEST_ITEM },
  { command: MORE_HEADERS_DIRECTIVE, item: HEADER },
];

/** An XML attribute in an element's start tag: its name (group 1) and its value, in double (group 2) or single quotes (group 3). */
const XML_ATTRIBUTE = /\s([\w.:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;

/** `key="Password" value="…"`, `name="password" value="…"`: XML attributes naming the setting the next one holds. */
const NAMING_ATTRIBUTE = /^(?:key|name)$/i;
const VALUE_ATTRIBUTE = /\s+value\s*=\s*/y;

/**
 * Commands known to take a password in a short option (`command`: the command and the arguments
 * it reads), and where the password is in them: what comes before it (group 1) and the argument
 * (group 2), all of it or, for `user`, what follows `user:`. Only these: to most other programs
 * `-p` is a port, a path or a flag. `mysql -p db` asks for the password and names a database, so
 * only a glued `-pSECRET` is one; sshpass reads its options up to the program it runs
 * (`sshpass -p SECRET ssh -p 2222 host`: 2222 is ssh's port); curl's `-u` may end a bundle of
 * one-letter flags (`curl -fsSLu user:SECRET`), as its `-H` may (HEADER_OPTION); HTTPie's and
 * xh's `-a user:SECRET` (`--auth`, `--auth=`) likewise; redis-cli's `-a SECRET` (`--pass`).
 */
const PASSWORD_COMMANDS: readonly { command: RegExp; argument: RegExp; user: boolean }[] = [
  { command: /(?<![\w.-])(?:mysql(?:dump|admin)?|mariadb(?:-dump|-admin)?)(?![\w.-])[^|;&\r\n]*/g, argument: new RegExp(String.raw`(\s-p)(${ARGUMENT})`, 'g'), user: false },
  { command: new RegExp(String.raw`(?<![\w.-])sshpass(?:\s+(?:-[fdpP]\s*(?:${ARGUMENT})|-\S*))*`, 'g'), argument: new RegExp(String.raw`(\s-p\s*)(${ARGUMENT})`, 'g'), user: false },
  { command: /(?<![\w.-])curl(?![\w.-])[^|;&\r\n]*/g, argument: new RegExp(String.raw`(\s(?:-[A-Za-z]*[uU]\s*|--(?:proxy-)?user\s+))(${ARGUMENT})`, 'g'), user: true },
  { command: HTTP_ITEMS_COMMAND, argument: new RegExp(String.raw`(\s(?:-[A-Za-z]*a\s*|--auth(?:\s+|=)))(${ARGUMENT})`, 'g'), user: true },
  { command: /(?<![\w.-])redis-cli(?![\w.-])[^|;&\r\n]*/g, argument: new RegExp(String.raw`(\s(?:-a|--pass)\s+)(${ARGUMENT})`, 'g'), user: false },
];

/**
 * A line with what looks like a secret in it masked where it is not a whole setting: a JSON pair,
 * a URL's password, an XML element, a flow mapping's pair, an HTTP header a web server's directive
 * sets, a command-line option, an HTTP header given in one (to curl, as an HTTPie request item, to
 * nginx's `more_set_headers`), a setting inside the line, a password given to a command known to take one,
 * a .netrc password.
 * `valueParent`: the start tag on the line before that names a `<value>` element beginning this one
 * (see `maskLines`), or `''`.
 */
function maskInLine(line: string, found: string[] | undefined, valueParent: string): string {
  let out = line;
  const masked = (value: string, shown: string): string => {
    found?.push(value);
    return shown;
  };
  if (out.includes('"')) out = out.replace(JSON_PAIR, (pair, head: string, name: string, value: string) => (secretSetting(name, value) ? masked(value, `${head}"${SECRET_MASK}"`) : pair));
  if (out.includes('://')) out = out.replace(URL_PASSWORD, (_all, head: string, password: string) => masked(password, `${head}${SECRET_MASK}`));
  if (out.includes('</')) {
    // The `<value>` element that begins the line is named by the start tag that ended the line before.
    const lead = valueParent === '' ? -1 : out.search(/\S/);
    out = out.replace(XML_ELEMENT, (all, head: string, name: string, text: string, at: number) =>
      secretSetting(name, text) || namedSecret(at === lead ? `${valueParent}${head}` : head, text) ? masked(text, `${head}${SECRET_MASK}`) : all,
    );
  }
  if (out.includes('{')) out = maskFlowPairs(out, found);
  if (/header/i.test(out)) {
    for (const directive of HEADER_DIRECTIVES) {
      out = out.replace(directive, (all, head: string, name: string, blanks: string, value: string) => {
        const secret = valueSecret(name, value);
        return secret === undefined ? all : masked(secret.value, `${head}${name}${blanks}${secret.shown}`);
      });
    }
  }
  if (/(?:https?|xhs?)[ \t]|more_set/.test(out)) {
    for (const { command, item } of HEADER_ARGUMENTS) {
      out = out.replace(command, (args) =>
        args.replace(COMMAND_ARGUMENT, (arg, blank: string, argument: string) => {
          const secret = headerArgumentSecret(argument, item);
          return secret === undefined ? arg : masked(secret.value, `${blank}${secret.shown}`);
        }),
      );
    }
  }
  // Before OPTION: a glued `-pSECRET` would read to it as an option of that name, and the database after it as its value.
  // Each argument a command takes its password in starts with a blank and a `-`.
  if (/\s-/.test(out)) {
    for (const { command, argument, user } of PASSWORD_COMMANDS) {
      out = out.replace(command, (args) =>
        args.replace(argument, (arg, head: string, value: string) => {
          const [text, quote] = quoted(value);
          // curl's is `user:password`: the user stays; without a password curl asks for one. Its quotes are kept (`user:'p w'`).
          const from = user ? text.indexOf(':') + 1 : 0;
          const [password, inner] = quoted(text.slice(from));
          if ((user && from === 0) || password === '' || password === SECRET_MASK) return arg;
          return masked(password, `${head}${quote}${text.slice(0, from)}${inner}${SECRET_MASK}${inner}${quote}`);
        }),
      );
    }
  }
  if (out.includes('-')) out = maskOptions(out, found);
  if (out.includes('=')) out = maskInlineSettings(out, found);
  if (NETRC_LINE.test(out)) {
    out = out.replace(NETRC_PASSWORD, (all, head: string, value: string) => {
      const secret = valueSecret('password', value);
      return secret === undefined ? all : masked(secret.value, `${head}${secret.shown}`);
    });
  }
  return out;
}

/**
 * `line` with the value of each command-line option OPTION finds masked where the option's name says
 * it is a secret's, or, for a header option, the header's name does (its name kept: `-H "Authorization: <secret>"`).
 * An option after a blank is no value of the one before, a flag (`curl -s -H …`, `-v --token=…`),
 * unless that one's name says secret and the value starts with a single `-`: a password may so
 * (`--token -hunter2Token`), where a `--…` is the next option, after a flag whose name holds a
 * secret word (`--pass-credentials --password …`, `--no-password`, `--with-token`).
 * Linear: where a flag was read, OPTION reads on from the option after it, never before it.
 */
function maskOptions(line: string, found: string[] | undefined): string {
  let out = '';
  let copied = 0;
  OPTION.lastIndex = 0;
  for (let m = OPTION.exec(line); m !== null; m = OPTION.exec(line)) {
    const head = m[1]!;
    const value = m[4]!;
    if (!head.endsWith('=') && OPTION_LIKE.test(value) && (value.startsWith('--') || !secretName(m[3]!, false))) {
      // Back to the blank before it: it is read as an option of its own.
      OPTION.lastIndex = m.index + head.length - 1;
      continue;
    }
    const secret = optionSecret(m[2]!, m[3]!, value);
    if (secret === undefined) continue;
    found?.push(secret.value);
    out += `${line.slice(copied, m.index)}${head}${secret.shown}`;
    copied = OPTION.lastIndex;
  }
  return out + line.slice(copied);
}

/** A secret found in a line: the value, and what is shown in place of what held it. */
interface FoundSecret {
  value: string;
  shown: string;
}

/** The secret an option (as written, and its name) is given in `value`, and `value` as shown with it masked; none where neither name says secret. */
function optionSecret(option: string, name: string, value: string): FoundSecret | undefined {
  // A value masked already, or in part (HTTPie's `--auth user:<secret>`), is left as it is.
  if (!HEADER_OPTION.test(option)) return !value.includes(SECRET_MASK) && secretSetting(name, value) ? { value: unquoted(value), shown: SECRET_MASK } : undefined;
  return headerArgumentSecret(value, HEADER);
}

/**
 * The secret an HTTP header given in one argument holds (`"X-Api-Key: …"`, `Authorization:'Bearer …'`),
 * read as `item` (HEADER, REQUEST_ITEM) reads one, and the argument as shown with it masked, the
 * name and separator kept; none where the name says no secret (a query's parameter's as `querySetting`).
 */
function headerArgumentSecret(argument: string, item: RegExp): FoundSecret | undefined {
  const [text, quote] = quoted(argument);
  const header = item.exec(text);
  if (header === null) return undefined;
  const secret = valueSecret(header[1]!, header[3]!, header[2] === '==' ? querySetting : secretSetting);
  return secret === undefined ? undefined : { value: secret.value, shown: `${quote}${header[1]!}${header[2]!}${secret.shown}${quote}` };
}

/**
 * The secret in the value of the setting `name` (an HTTP header, a request item, a directive), in
 * quotes or not, and the value as shown with it masked, its quotes kept; none where `secret` says
 * the setting is none.
 */
function valueSecret(name: string, value: string, secret = secretSetting): FoundSecret | undefined {
  const [text, quote] = quoted(value);
  if (text === '' || text === SECRET_MASK || !secret(name, text)) return undefined;
  return { value: text, shown: `${quote}${SECRET_MASK}${quote}` };
}

/**
 * `line` with the value of each setting INLINE_SETTING finds masked where its name says it is a
 * secret, its quotes kept (`password="<secret>"`: an XML attribute stays well formed). A value
 * not masked is read on: it may hold settings of its own (`connectionString="…;Password=…"`).
 */
function maskInlineSettings(line: string, found: string[] | undefined): string {
  let out = '';
  let copied = 0;
  INLINE_SETTING.lastIndex = 0;
  for (let m = INLINE_SETTING.exec(line); m !== null; m = INLINE_SETTING.exec(line)) {
    let name = m[1]!;
    // A query's `key` holds a key, its `sig` a signature; `key=` elsewhere may name an XML setting (`<add key="Password" value="…"/>`).
    const query = querySecret(line, m.index, name);
    const naming = !query && NAMING_ATTRIBUTE.test(name);
    // No value is read that cannot be masked: one read for each `a=` in `a=a=a=…` would make the pass quadratic.
    if (!naming && !query && !secretName(name, false)) continue;
    let at = INLINE_SETTING.lastIndex;
    let value = settingValue(line, at);
    if (naming && value?.open === 1) {
      VALUE_ATTRIBUTE.lastIndex = at + value.text.length;
      if (VALUE_ATTRIBUTE.test(line)) {
        // The setting is the one the attribute names, which is no secret itself.
        name = value.inner;
        at = VALUE_ATTRIBUTE.lastIndex;
        value = settingValue(line, at);
        INLINE_SETTING.lastIndex = at;
      }
    }
    if (value === undefined || value.inner === '' || value.inner === SECRET_MASK) continue;
    // A name of its own was read above; only one an attribute named is left to read.
    if (naming ? !secretSetting(name, value.inner) : settingWord(value.inner)) continue;
    found?.push(value.inner);
    out += `${line.slice(copied, at)}${maskedValue(value)}`;
    copied = at + value.text.length;
    INLINE_SETTING.lastIndex = copied;
  }
  return out + line.slice(copied);
}

/**
 * `line` with the value of each pair of a flow mapping (FLOW_TOKEN) masked where its key says it is
 * a secret's, its quotes kept. A pair is read only inside a mapping: `, password: x` in prose is none.
 * Every value inside one is read past, so that a brace in it (`{name: 'a}'}`) is not taken for one.
 */
function maskFlowPairs(line: string, found: string[] | undefined): string {
  let out = '';
  let copied = 0;
  let depth = 0;
  FLOW_TOKEN.lastIndex = 0;
  for (let m = FLOW_TOKEN.exec(line); m !== null; m = FLOW_TOKEN.exec(line)) {
    if (m[0] === '}') depth = Math.max(0, depth - 1);
    else if (m[0][0] === '{') depth++;
    const name = m[2] ?? m[3];
    if (name === undefined || depth === 0) continue;
    const at = FLOW_TOKEN.lastIndex;
    const value = settingValue(line, at, FLOW_VALUE);
    if (value === undefined) continue;
    FLOW_TOKEN.lastIndex = at + value.text.length;
    if (value.inner === '' || value.inner === SECRET_MASK || !secretSetting(name, value.inner)) continue;
    found?.push(value.inner);
    out += `${line.slice(copied, at)}${maskedValue(value)}`;
    copied = FLOW_TOKEN.lastIndex;
  }
  return out + line.slice(copied);
}

/** Whether an XML element's start tag names what it holds a secret (`<entry key="password">`), by a naming attribute (NAMING_ATTRIBUTE). */
function namedSecret(head: string, text: string): boolean {
  for (const a of head.matchAll(XML_ATTRIBUTE)) {
    if (NAMING_ATTRIBUTE.test(a[1]!) && secretSetting(a[2] ?? a[3]!, text)) return true;
  }
  return false;
}

/**
 * Whether the setting `name` at `at` is a URL query's parameter that holds a secret there
 * (QUERY_SECRET_NAME). A query's: after a `?` that ends a URL's path, or after an `&` (`&amp;` in HTML).
 */
function querySecret(line: string, at: number, name: string): boolean {
  const before = line[at - 1];
  const inQuery = before === '&' || (before === '?' && at > 1 && /[^\s"']/.test(line[at - 2]!)) || line.endsWith('&amp;', at);
  return inQuery && QUERY_SECRET_NAME.test(nameWords(name));
}

/** A setting's value as read in a line: as written (`text`), what is inside its quotes (`inner`), and where that starts (`open`: 1 after a quote). */
interface SettingValue {
  text: string;
  inner: string;
  open: 0 | 1;
}

/** The value `pattern` (SETTING_VALUE, FLOW_VALUE: sticky, what is inside quotes in group 1 or 2) reads at `at`. */
function settingValue(line: string, at: number, pattern = SETTING_VALUE): SettingValue | undefined {
  pattern.lastIndex = at;
  const m = pattern.exec(line);
  if (m === null) return undefined;
  const inner = m[1] ?? m[2];
  return inner === undefined ? { text: m[0], inner: m[0], open: 0 } : { text: m[0], inner, open: 1 };
}

/** A value as written with what is inside its quotes masked, the quotes kept. */
function maskedValue(value: SettingValue): string {
  return `${value.text.slice(0, value.open)}${SECRET_MASK}${value.text.slice(value.open + value.inner.length)}`;
}

/** An option's value without the quotes around it, if any. */
function unquoted(value: string): string {
  return /^(["']).*\1$/s.test(value) ? value.slice(1, -1) : value;
}

/** An option's value without its quotes (`unquoted`), and the quote it was in (`''` for none). */
function quoted(value: string): [text: string, quote: string] {
  const text = unquoted(value);
  return [text, text === value ? '' : value[0]!];
}

/** A URL query's parameter that holds a secret: named as any setting that does (`secretSetting`), or as only a query's does (QUERY_SECRET_NAME). */
function querySetting(name: string, value: string): boolean {
  return (secretName(name, false) || QUERY_SECRET_NAME.test(nameWords(name))) && !settingWord(value);
}

/** A setting whose name says it is a secret's (`secretName`), its value no setting word. */
function secretSetting(name: string, value: string, ownLine = false): boolean {
  return secretName(name, ownLine) && !settingWord(value);
}

/** A setting's name that says it holds a secret (SECRET_NAME; LINE_KEY_NAME too for one on a line of its own). */
function secretName(name: string, ownLine: boolean): boolean {
  const words = nameWords(name);
  return SECRET_NAME.test(words) || (ownLine && LINE_KEY_NAME.test(words));
}

/** A value that is a setting word (SETTING_WORD), blanks around it aside. */
function settingWord(value: string): boolean {
  return SETTING_WORD.test(value.trim());
}

/** The armour of a PEM private key: the lines between are the key. */
const PEM_PRIVATE_BEGIN = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
const PEM_END = /-----END [A-Z ]*-----/;

/**
 * Lines of a file as a drift report may show them (a line diff), with what
 * looks like a secret masked: the value of a setting whose name says it is
 * one by its words (SECRET_NAME; `DB_PASSWORD=…`, `api_key: …`, `requirepass …`, `password:` and
 * the value on the more indented lines below it, `"password": "…"`, `<password>…`,
 * `<entry key="password">…`, `<property name="password"><value>…` (the `<value>` on the line
 * after too), `{user: app, password: …}`,
 * `--password=…`, `-H "X-Api-Key: …"`, `http … X-Api-Key:…`, `http … api_key==…`,
 * `proxy_set_header Authorization "…";`, `more_set_headers 'X-Api-Key: …';`, `host=db password=…`,
 * `?password=…`, `<x password="…"/>`), a URL query's `key` and signature (`?key=…`,
 * `&X-Amz-Signature=…`), a URL's password (`postgres://app:…@db`), a password given to a command
 * known to take one (`mysql -p…`, `curl -u user:…`, `http -a user:…`, `redis-cli -a …`), a
 * .netrc's and a .pgpass's password and the body of a PEM private key.
 * A managed file's lines come from the goals, but a hand edit may add a
 * secret, and a report is logged and stored. Pure; the rest is unchanged.
 */
export function maskSecretLines(lines: readonly string[]): string[] {
  return maskLines(lines, undefined);
}

/** `maskSecretLines`, putting each value it masks in `found` too (when given). */
function maskLines(lines: readonly string[], found: string[] | undefined): string[] {
  let inKey = false;
  // The YAML key whose secret value the lines below it hold (YAML_BLOCK_KEY): its indentation, whether
  // its value is a block scalar (any line is part of it), and whether a line of its value was read.
  let block: { indent: number; literal: boolean; read: boolean } | undefined;
  // The start tag that ended the last line not blank (XML_VALUE_PARENT_LINE), naming a `<value>` that begins the next.
  // A `<value>` line keeps it for the next: a line diff shows the line as it is and as it should be one after the other.
  let parent = '';
  return lines.map((line) => {
    const valueParent = XML_VALUE_LINE.test(line) ? parent : '';
    if (/\S/.test(line)) parent = XML_VALUE_PARENT_LINE.exec(line)?.[1] ?? valueParent;
    if (inKey) {
      if (!PEM_END.test(line)) {
        found?.push(line.trim());
        return SECRET_MASK;
      }
      inKey = false;
    } else if (PEM_PRIVATE_BEGIN.test(line)) {
      inKey = true;
    }
    if (block !== undefined && /\S/.test(line)) {
      // A value's lines are indented below its key; a line diff shows the value as it is and as it should be, one line after the other.
      const indent = /^[ \t]*/.exec(line)![0];
      if (indent.length > block.indent && (block.literal || block.read || !YAML_NOT_SCALAR.test(line))) {
        block.read = true;
        const text = line.slice(indent.length).replace(/\r$/, '');
        found?.push(text.trimEnd());
        return `${indent}${SECRET_MASK}${line.slice(indent.length + text.length)}`;
      }
      block = undefined;
    }
    const key = YAML_BLOCK_KEY.exec(line);
    if (key !== null && secretName(key[3]!, true)) {
      block = { indent: key[1]!.length, literal: key[4] !== undefined, read: false };
      return line;
    }
    return maskSetting(line, found) ?? maskInLine(line, found, valueParent);
  });
}

/**
 * A line that is a setting of its own, with its value masked where its name says secret (read as a
 * setting on a line of its own is, `secretSetting`): `NAME=value`, `name: value` (ASSIGNMENT), a
 * .pgpass line's password, `requirepass value` (DIRECTIVE); none where the line is no such setting.
 */
function maskSetting(line: string, found: string[] | undefined): string | undefined {
  const pgpass = PGPASS_LINE.exec(line);
  if (pgpass !== null) {
    found?.push(pgpass[2]!);
    return `${pgpass[1]!}${SECRET_MASK}${pgpass[3]!}`;
  }
  const m = ASSIGNMENT.exec(line);
  if (m !== null && secretSetting(m[3]!, m[4]!, true)) {
    found?.push(m[4]!, unquoted(m[4]!));
    return `${m[1]!}${SECRET_MASK}${m[5]!}`;
  }
  const directive = DIRECTIVE.exec(line);
  if (directive === null) return undefined;
  const secret = valueSecret(directive[2]!, directive[3]!, (name, value) => secretSetting(name, value, true));
  if (secret === undefined) return undefined;
  found?.push(secret.value);
  return `${directive[1]!}${secret.shown}${directive[4]!}`;
}

/** A text of one or more lines with what looks like a secret in it masked, line by line (`maskSecretLines`). */
export function maskSecretText(text: string): string {
  return text.includes('\n') ? maskSecretLines(text.split('\n')).join('\n') : maskSecretLines([text])[0]!;
}

/**
 * A JSON value as a drift shows it (what an exec or script read reports, the input it is compared
 * with), walked to its strings: under a key whose name says secret (read as the name of a setting on
 * a line of its own, `secretName`: `STRIPE_KEY` too) a value is masked whole, a number too (`pin:
 * 1234`) and not a setting word nor an empty text, and so is every such value beneath it, a list's
 * items and a map's values alike (`secrets: [a, b]`, `password: {value: …}`); any other string as a
 * line diff masks it (`maskSecretText`: `DB_PASSWORD=…` written into a file's text). `key`: the
 * name the value is under. Pure; the keys are kept.
 */
export function maskSecretValue(value: unknown, key: string): unknown {
  return maskValue(value, secretKey(key, value), 0, false);
}

/**
 * Whether `value` is under a key that says secret (`maskSecretValue`); a map or a list also under
 * the plural of one (`tokens`, `apiKeys`, `passwords`, docker's `auths`): it holds secrets, where a
 * number under `max_tokens` is a count.
 */
function secretKey(key: string, value: unknown): boolean {
  return secretName(key, true) || (typeof value === 'object' && value !== null && /s$/i.test(key) && secretName(key.slice(0, -1), true));
}

/**
 * `maskSecretValue` of a value under a secret's name (`secret`) or not, `depth` levels down; with
 * `refsAsWritten`, a secret reference is kept (a desired value: it names a secret, and holds none).
 */
function maskValue(value: unknown, secret: boolean, depth: number, refsAsWritten: boolean): unknown {
  if (typeof value === 'string' || typeof value === 'number') {
    const text = String(value);
    if (secret && text !== '' && text !== SECRET_MASK && !settingWord(text)) return SECRET_MASK;
    return typeof value === 'string' ? maskSecretText(value) : value;
  }
  if (typeof value !== 'object' || value === null || (refsAsWritten && isSecretRef(value))) return value;
  // Deeper than any value a read should report: hidden whole rather than walked off the stack (as `SecretMask.deep`).
  if (depth >= MAX_MASK_DEPTH) return SECRET_MASK;
  if (Array.isArray(value)) return value.map((x) => maskValue(x, secret, depth + 1, refsAsWritten));
  return Object.fromEntries(Object.entries(value).map(([k, x]) => [k, maskValue(x, secret || secretKey(k, x), depth + 1, refsAsWritten)]));
}

/**
 * A desired spec as `plan` shows a create: the text a file will hold with what looks like a secret in it
 * masked, as a drift report of that file would show it (`maskSecretLines`), and a free-form value (an
 * exec or script input) as its drift would show it (`maskSecretValue`). Pure; the spec is not changed.
 */
export function shownSpec(spec: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  const { texts, values } = shownFields(spec);
  if (texts.length + values.length === 0) return spec;
  const shown: Record<string, unknown> = { ...spec };
  for (const f of texts) {
    const text = shown[f];
    if (typeof text === 'string') shown[f] = maskSecretText(text);
  }
  for (const f of values) if (shown[f] !== undefined) shown[f] = shownValue(f, shown[f]);
  return shown;
}

/** The fields of a spec that `shownSpec` masks: its type's text fields and free-form values. */
function shownFields(spec: Readonly<Record<string, unknown>>): { readonly texts: readonly string[]; readonly values: readonly string[] } {
  if (!isInfraNodeType(String(spec.type))) return { texts: [], values: [] };
  const type = spec.type as InfraNodeType;
  return { texts: textFields[type] ?? [], values: valueFields[type] ?? [] };
}

/** A free-form value under `key` as `shownSpec` shows it. */
function shownValue(key: string, value: unknown): unknown {
  return maskValue(value, secretKey(key, value), 0, true);
}

/**
 * `message` with what `shownSpec` masks in `spec` masked alike, for a message that may quote the
 * spec (a policy rule's evaluation error quotes the value it failed on), shown beside the plan that
 * masks it. Where the message quotes a whole line of the text, as it is or as a JSON string has it,
 * the line is shown as `shownSpec` shows it; where it quotes only a masked value, that value is
 * masked (not one shorter than MIN_MASKED_SECRET_LENGTH, as in `SecretMask.text`). Pure.
 */
export function maskShownSecrets(spec: Readonly<Record<string, unknown>>, message: string): string {
  const { texts, values } = shownFields(spec);
  if (texts.length + values.length === 0) return message;
  const shown = new Map<string, string>();
  const put = (from: string, to: string): void => {
    if (from === '' || from === to || shown.has(from)) return;
    shown.set(from, to);
    const quoted = JSON.stringify(from).slice(1, -1);
    if (quoted !== from) shown.set(quoted, JSON.stringify(to).slice(1, -1));
  };
  const putText = (text: string): void => {
    const found: string[] = [];
    const lines = text.split('\n');
    const masked = maskLines(lines, found);
    lines.forEach((line, i) => put(line, masked[i]!));
    for (const value of found) if (value.length >= MIN_MASKED_SECRET_LENGTH) put(value, SECRET_MASK);
  };
  // A free-form value beside its shown form: a value masked whole, and the text of any other string.
  const putValue = (value: unknown, masked: unknown): void => {
    if (typeof value === 'string' || typeof value === 'number') {
      if (masked !== SECRET_MASK) {
        if (typeof value === 'string') putText(value);
      } else if (String(value).length >= MIN_MASKED_SECRET_LENGTH) {
        put(String(value), SECRET_MASK);
      }
    } else if (typeof value === 'object' && value !== null && typeof masked === 'object' && masked !== null) {
      for (const [k, x] of Object.entries(value)) putValue(x, (masked as Record<string, unknown>)[k]);
    }
  };
  for (const f of texts) {
    const text = spec[f];
    if (typeof text === 'string') putText(text);
  }
  for (const f of values) putValue(spec[f], shownValue(f, spec[f]));
  if (shown.size === 0) return message;
  // One pass, longest first: what is replaced is not looked at again. A mask already there is left whole (see replaceForms).
  const forms = new RegExp([...shown.keys()].sort((a, b) => b.length - a.length).map(escapeRegex).join('|'), 'g');
  return message
    .split(SECRET_MASK)
    .map((part) => part.replace(forms, (m) => shown.get(m)!))
    .join(SECRET_MASK);
}

/** Drift values and outputs nested deeper than this are masked whole. */
const MAX_MASK_DEPTH = 100;

/** Shorter values are not masked: they would blot out unrelated text, and are no secret worth the name. */
const MIN_MASKED_SECRET_LENGTH = 4;

/** Where a message was shortened (`tailLines`, an excerpt of a command's output): a secret may be cut there. */
const CUT = '…';

/**
 * The values a mask hides. Build it once per backend (env) or per run (resolved secrets). Two kinds:
 * secrets (a resolved secret reference, an allowlisted variable named as one), hidden wherever they
 * appear; and values that may be secrets (a long allowlisted value under an ordinary name, such as
 * a connection URL), hidden in messages only (see `outputs`).
 */
export class SecretMask {
  private readonly values: readonly string[];
  /**
   * What `text` looks for: each value, and each value as it reads inside a JSON string (an excerpt of
   * a command's output is quoted so: a quote, a backslash or a newline in a secret is escaped there);
   * for a value of several lines (a private key), each line too, without its surrounding blanks: a
   * fault keeps only the last lines of stderr, trimmed (`tailLines`). Longest first, so that a secret
   * containing another is masked whole.
   */
  private readonly forms: readonly string[];
  /** The values known to be secrets: those `outputs` hides too. */
  private readonly secrets: readonly string[];
  /** The forms (as `forms`) of `secrets` only. */
  private readonly secretForms: readonly string[];
  /**
   * Secrets too short to mask inside a text (a word would lose every "abc" in it): masked only where a
   * value is exactly one (an output, a drift value), so that none is stored as it is.
   */
  private readonly shortSecrets: ReadonlySet<string>;

  /** `secrets` are hidden everywhere; `suspects`, values that may be secrets, in messages only. */
  constructor(secrets: Iterable<string>, suspects: Iterable<string> = []) {
    const all = [...secrets];
    this.secrets = maskable(all);
    this.shortSecrets = new Set(all.filter((v) => v.length > 0 && v.length < MIN_MASKED_SECRET_LENGTH));
    this.values = [...new Set([...this.secrets, ...maskable(suspects)])];
    this.forms = formsOf(this.values);
    this.secretForms = formsOf(this.secrets);
  }

  /**
   * The values of an allowlisted environment that may be secrets: not the well-known public
   * variables; a short value only under a secret's name (see ALWAYS_MASKED_LENGTH). Those under a
   * secret's name are secrets; the other long ones only suspects, hidden in messages but not in
   * outputs (see `outputs`).
   */
  static fromEnv(env: Readonly<Record<string, string>>): SecretMask {
    const secrets: string[] = [];
    const suspects: string[] = [];
    for (const [name, value] of Object.entries(env)) {
      if (PUBLIC_ENV_NAME.test(name)) continue;
      if (SECRET_ENV_NAME.test(name) && !SETTING_WORD.test(value)) secrets.push(value);
      else if (value.length >= ALWAYS_MASKED_LENGTH) suspects.push(value);
    }
    return new SecretMask(secrets, suspects);
  }

  /** This mask with more secrets (values resolved for a run: hidden everywhere, outputs too). */
  with(secrets: Iterable<string>): SecretMask {
    const known = new Set(this.secrets);
    return new SecretMask([...this.secrets, ...this.shortSecrets, ...secrets], this.values.filter((v) => !known.has(v)));
  }

  get empty(): boolean {
    return this.values.length === 0 && this.shortSecrets.size === 0;
  }

  /** A whole value that is a short secret, masked; any other as `mask` makes it. */
  private whole(mask: (t: string) => string): (t: string) => string {
    return (t) => (this.shortSecrets.has(t) ? SECRET_MASK : mask(t));
  }

  text(text: string): string {
    const out = replaceForms(text, this.forms);
    return out.includes(CUT) ? this.cutShort(out) : out;
  }

  /**
   * `text` with what is left of a secret cut short at a `…` masked: the start of one just before
   * the cut, the end of one just after it; as for whole values, not fewer than
   * MIN_MASKED_SECRET_LENGTH characters (a word ending in a secret's first letter is left alone).
   */
  private cutShort(text: string): string {
    const parts = text.split(CUT);
    return parts
      .map((part, i) => {
        const end = i < parts.length - 1 ? this.maxOver((f) => headAtEnd(f, part)) : 0;
        const rest = part.slice(0, part.length - end);
        const start = i > 0 ? this.maxOver((f) => tailAtStart(f, rest)) : 0;
        return `${start > 0 ? SECRET_MASK : ''}${rest.slice(start)}${end > 0 ? SECRET_MASK : ''}`;
      })
      .join(CUT);
  }

  /** The most `length` gives for any form. */
  private maxOver(length: (form: string) => number): number {
    const max = this.forms.reduce((m, f) => Math.max(m, length(f)), 0);
    return max >= MIN_MASKED_SECRET_LENGTH ? max : 0;
  }

  /**
   * What a wrapped program said, for a fault or a reason: `text`, and what looks like a secret masked
   * as a drift report masks it (`maskSecretText`: a URL's password, `DB_PASSWORD=…`), which no mask
   * knows: a program quotes its own configuration's password as readily as one it was handed
   * (`connect failed: postgres://app:…@db`). The rest of the message is kept.
   */
  message(text: string): string {
    return maskSecretText(this.empty ? text : this.text(text));
  }

  /** A fault with its message and hint masked (`message`); the same object when nothing in them is. */
  fault(f: Fault): Fault {
    const message = this.message(f.message);
    const hint = f.hint === undefined ? undefined : this.message(f.hint);
    return message === f.message && hint === f.hint ? f : { ...f, message, ...(hint === undefined ? {} : { hint }) };
  }

  /** Anything thrown, as a `FaultError` whose message is masked (the cause is dropped: it may quote the secret). */
  thrown(err: unknown): FaultError {
    const f = toFault(err);
    const masked = this.fault(f);
    return err instanceof FaultError && masked === f ? err : new FaultError(masked);
  }

  /**
   * An observation with its reason, fault and drift values masked, and the secrets in its outputs
   * (see `outputs`).
   */
  observation(obs: Observation): Observation {
    // What the program said is looked at whatever the mask holds (`message`).
    if (obs.status === 'indeterminate') return { ...obs, reason: this.message(obs.reason) };
    if (obs.status === 'failed') return { ...obs, fault: this.fault(obs.fault) };
    if (this.empty) return obs;
    switch (obs.status) {
      case 'absent':
        return obs;
      case 'upToDate':
        return { ...obs, outputs: this.outputs(obs.outputs) };
      case 'drifted':
        return { ...obs, diffs: obs.diffs.map((d) => this.diff(d)), outputs: this.outputs(obs.outputs) };
      default:
        return assertNever(obs, 'observation');
    }
  }

  /**
   * Outputs with the secrets in them masked: in every string, keys too, at any depth. Outputs are
   * stored, shown by `status` and handed to dependents, and a secret is never stored; a command may
   * well print one (the password it was handed, a URL holding it, its token). Only secrets, not the
   * values that may be (`fromEnv`'s long values under ordinary names): outputs are data that
   * dependents read, and blotting a region or a whole URL out of them because an allowlisted variable
   * happens to hold it would break them, where in a message it only hides a word (what looks like a
   * secret inside one is masked, though: a URL's password, `password=…`; see below). Whole values only,
   * not what is left of one at a `…` (`text`'s `cutShort`): an output is not an excerpt we cut, and
   * a `…` in it is the program's own. A dependent that references a masked output gets the mask: one
   * that needs the secret takes it from a secret reference of its own. Deterministic, so outputs
   * masked again on the next pass equal those recorded (no record rewritten, no flapping).
   */
  outputs(outputs: Outputs): Outputs {
    if (this.secretForms.length === 0 && this.shortSecrets.size === 0) return outputs;
    // Two keys masked alike would be one; the later wins, which is no loss: both named a secret.
    // What looks like a secret is masked too (a URL's password, `password=…`): a call handed a secret
    // may print an earlier one, which no mask knows (a resource still holding the value a rotated
    // secret had: `postgres://app:OLD@db`), and outputs are stored and handed to dependents. Only by a name that says
    // secret (SECRET_NAME): a value masked changes what the dependents receive, and makes them update to the mask.
    return this.deep(outputs, this.whole((t) => maskSecretText(replaceForms(t, this.secretForms)))) as Outputs;
  }

  private diff(d: FieldDiff): FieldDiff {
    const text = this.whole((t: string): string => this.text(t));
    return {
      ...d,
      // A path may quote a secret too: an Ansible task's name is templated (`task:configure db with {{ dbpw }}`).
      path: this.text(d.path),
      desired: this.deep(d.desired, text),
      actual: this.deep(d.actual, text),
      ...(d.detail === undefined ? {} : { detail: this.text(d.detail) }),
    };
  }

  /** `v` with `text` applied to every string in it, map keys too. */
  private deep(v: unknown, text: (t: string) => string, depth = 0): unknown {
    if (typeof v === 'string') return text(v);
    if (typeof v !== 'object' || v === null) return v;
    // Deeper than any value a backend should report: hidden whole rather than walked off the stack.
    if (depth >= MAX_MASK_DEPTH) return SECRET_MASK;
    if (Array.isArray(v)) return v.map((x) => this.deep(x, text, depth + 1));
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [text(k), this.deep(x, text, depth + 1)]));
  }
}

/** The values worth masking, each once: not those too short to be a secret (MIN_MASKED_SECRET_LENGTH). */
function maskable(values: Iterable<string>): string[] {
  return [...new Set([...values].filter((v) => v.length >= MIN_MASKED_SECRET_LENGTH))];
}

/** The forms a mask looks for (see `SecretMask.forms`), longest first. */
function formsOf(values: readonly string[]): string[] {
  const lines = (v: string): string[] => (/[\r\n]/.test(v) ? v.split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l.length >= MIN_MASKED_SECRET_LENGTH) : []);
  return [...new Set(values.flatMap((v) => [v, ...lines(v)]).flatMap((v) => [v, JSON.stringify(v).slice(1, -1)]))].sort((a, b) => b.length - a.length);
}

/**
 * `text` with each of `forms` (longest first) replaced by the mask. A mask already in it is left
 * whole: outputs recorded masked are masked again on the next pass, and a secret that is part of
 * the mask (a password "secret") would otherwise grow it every time, and rewrite the record.
 */
function replaceForms(text: string, forms: readonly string[]): string {
  return text
    .split(SECRET_MASK)
    .map((part) => {
      let out = part;
      for (const f of forms) if (out.includes(f)) out = out.split(f).join(SECRET_MASK);
      return out;
    })
    .join(SECRET_MASK);
}

/** The length of the longest end of `text` that begins `form` without being all of it (0 for none). */
function headAtEnd(form: string, text: string): number {
  for (let i = text.indexOf(form[0]!, Math.max(0, text.length - form.length + 1)); i !== -1; i = text.indexOf(form[0]!, i + 1)) {
    if (form.startsWith(text.slice(i))) return text.length - i;
  }
  return 0;
}

/** The length of the longest start of `text` that ends `form` without being all of it (0 for none). */
function tailAtStart(form: string, text: string): number {
  if (text === '') return 0;
  for (let j = form.indexOf(text[0]!, Math.max(1, form.length - text.length)); j !== -1; j = form.indexOf(text[0]!, j + 1)) {
    if (text.startsWith(form.slice(j))) return form.length - j;
  }
  return 0;
}
