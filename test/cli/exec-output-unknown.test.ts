import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, execNode, shellResource, tempProject } from '../support/cli.ts';

/**
 * A reference to a key its producer's outputs lack (`${nodes.p.outputs.address}`, where p's command
 * prints no `address`) waited as for an output not given yet: `apply` said "transient: waiting for outputs p.address" on
 * every run, and a daemon retried it for ever. It is an error of the referring node now, naming the
 * producer, the key and the keys it gives, until the goal or the producer is fixed.
 */
const env = { DESIREDSTATE_LOG_LEVEL: 'silent' };

describe('a reference to an output the producer does not give', () => {
  it('fails apply, naming the producer, the key and the keys it gives, with a hint; once the producer gives it, apply converges', async () => {
    const p = tempProject('ds-exec-output-unknown-');
    // `$dir/fixed`, once it exists, makes the read print `address`: the producer's command fixed.
    const script = shellResource(
      p.dir,
      `req=$(cat)
case "$1" in
  read) if [ ! -f "$dir/$2" ]; then echo '{"exists":false}'
        elif [ -f "$dir/fixed" ]; then echo '{"exists":true,"state":{},"outputs":{"address":"10.0.0.7"}}'
        else echo '{"exists":true,"state":{}}'; fi ;;
  create) printf '%s' "$req" > "$dir/$2"; if [ "$2" = p ]; then echo '{"outputs":{"id":"vm-1","zone":"eu-1"}}'; else echo '{"outputs":{}}'; fi ;;
esac
`,
    );
    p.write('goals.yaml', `${execGoalHead()}${execNode('p', script, '{}')}${execNode('c', script, '{ ip: "${nodes.p.outputs.address}" }')}`);

    const first = await cli(['apply', '--yes', ...p.args], { env });
    expect(first.code).toBe(1);
    expect(first.stdout).toContain(
      'x c: permanent: node "c": spec.input.ip: ${nodes.p.outputs.address}: node "p" gives no output "address" (it gives: id, zone) (hint: fix the reference, or have node "p" output the key (an exec command prints it, as null until it has a value); then run `desiredstate retry c` (a change of the goal releases it too))',
    );
    expect(first.stdout).toContain('1 created, 0 updated, 0 deleted, 0 unchanged, 1 failed');

    writeFileSync(join(p.dir, 'fixed'), '');
    const second = await cli(['apply', '--yes', ...p.args], { env });
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).toContain('+ c: created');
    expect(readFileSync(join(p.dir, 'c'), 'utf8')).toContain('"input":{"ip":"10.0.0.7"}');
  });
});
