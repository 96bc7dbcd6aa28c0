import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, execNode, shellResource, tempProject } from '../support/cli.ts';

/**
 * A number a command printed that JSON cannot carry (an id of 20 digits) was read as the nearest double
 * and recorded so: the nodes that referred to it got another number, without a word. And a whole number
 * written in a goal in digits from 1e21 on passed `validate` and went to the command as a float, maybe
 * another number. Both are refused where they are; what passes reaches the command as written.
 */
const env = { DESIREDSTATE_LOG_LEVEL: 'silent' };

describe('numbers JSON cannot carry as written', () => {
  it('printed by a command as an output: the node fails naming the output and the number; printed as a string, it reaches the dependent as printed', async () => {
    const p = tempProject('ds-exec-output-numbers-');
    // `$dir/quoted`, once it exists, makes the commands print the id as a string: the command fixed.
    const script = shellResource(
      p.dir,
      `req=$(cat)
if [ -f "$dir/quoted" ]; then out='{"id":"12345678901234567890"}'; else out='{"id":12345678901234567890}'; fi
case "$1" in
  read) if [ -f "$dir/$2" ]; then echo "{\\"exists\\":true,\\"state\\":{},\\"outputs\\":$out}"; else echo '{"exists":false}'; fi ;;
  create) printf '%s' "$req" > "$dir/$2"; if [ "$2" = p ]; then echo "{\\"outputs\\":$out}"; else echo '{"outputs":{}}'; fi ;;
esac
`,
    );
    p.write('goals.yaml', `${execGoalHead()}${execNode('p', script, '{}')}${execNode('c', script, '{ id: "${nodes.p.outputs.id}", max: 9007199254740991, f: 0.1, e21: 1e21 }')}`);

    const first = await cli(['apply', '--yes', ...p.args], { env });
    expect(first.code).toBe(1);
    expect(first.stdout).toContain(
      'x p: permanent: create command printed numbers that JSON cannot carry as printed, a whole number beyond ±9007199254740991 (2^53−1) or one too large for a double: outputs.id: 12345678901234567890 (read as 12345678901234567000) (hint: print each as a string ("12345678901234567890"): a node that refers to it would get another number)',
    );
    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { env })).stdout) as { nodes: { id: string; backendId: string; status: string; outputs: unknown }[] };
    expect(status.nodes.find((n) => n.id === 'p')).toMatchObject({ backendId: 'exec', status: 'failed', outputs: null });

    writeFileSync(join(p.dir, 'quoted'), '');
    const second = await cli(['apply', '--yes', ...p.args], { env });
    expect(second.code, second.stdout + second.stderr).toBe(0);
    // The dependent's stdin: the id as printed, and the goal's numbers as written (1e21 is that float: 1e+21).
    expect(readFileSync(join(p.dir, 'c'), 'utf8')).toContain('"input":{"id":"12345678901234567890","max":9007199254740991,"f":0.1,"e21":1e+21}');
  });

  it('written in a goal as a whole number in digits from 1e21 on: validate refuses it where it is written', async () => {
    const p = tempProject('ds-exec-goal-numbers-');
    p.write('goals.yaml', `${execGoalHead()}${execNode('n', 'run', '{ size: 1000000000000000000000 }')}`);
    const r = await cli(['validate', ...p.args], { env });
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(
      'goals.yaml:14:92: error invalid-value: 1000000000000000000000 is a whole number beyond ±9007199254740991 (2^53−1), read as the nearest double, 1e+21, which may not be the number written: a string ("1000000000000000000000") keeps it as written',
    );
  });
});
