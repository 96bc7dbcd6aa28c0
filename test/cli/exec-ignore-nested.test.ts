import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';

// `ignoreFields: [input.nested.x]` passed validate and did nothing: exec drift is one diff per input
// key (`input.nested`), which an ignored path below it never matched, so a hand-set x showed as drift
// and apply ran update over it. The ignored key is now left out of the comparison.
const p = tempProject('ds-exec-ignore-nested-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
const state = join(p.dir, 'thing.json');
const updated = join(p.dir, 'updated');
const goal = `${execGoalHead()}    - id: thing
      type: generic.resource
      ignoreFields: [input.nested.x]
      spec:
        commands:
          read: [/bin/sh, -c, 'cat > /dev/null; if [ -e ${state} ]; then printf "{\\"exists\\":true,\\"state\\":%s}" "$(cat ${state})"; else echo "{\\"exists\\":false}"; fi']
          create: [/bin/sh, -c, 'echo "{\\"nested\\":{\\"x\\":1,\\"y\\":2}}" > ${state}; cat > /dev/null; echo "{\\"outputs\\":{}}"']
          update: [/bin/sh, -c, 'cat > ${updated}; echo "{\\"outputs\\":{}}"']
        input: { nested: { x: 1, y: 2 } }
`;

describe('ignoreFields on a path inside an exec input key', () => {
  it('a hand-set ignored key is no drift: plan is clean, apply runs no update; another key that differs still is', async () => {
    p.write('goals.yaml', goal);
    expect((await cli(['validate', ...p.args])).code).toBe(0);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    writeFileSync(state, '{"nested":{"x":99,"y":2}}');

    const plan = await cli(['plan', ...p.args]);
    expect(plan.stdout).not.toContain('input.nested');
    expect(plan.code, plan.stdout).toBe(0);
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stderr).toBe(0);
    expect(existsSync(updated)).toBe(false);
    expect(readFileSync(state, 'utf8')).toBe('{"nested":{"x":99,"y":2}}');

    // y differs too: drift, shown without the ignored x on either side, and corrected. The update is
    // handed the whole input, the ignored x as the goal has it: what it writes is the command's to say.
    writeFileSync(state, '{"nested":{"x":99,"y":3}}');
    const drifted = await cli(['plan', ...p.args]);
    expect(drifted.stdout).toContain('input.nested: {"y":3} → {"y":2}');
    expect(drifted.code).toBe(2);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    expect((JSON.parse(readFileSync(updated, 'utf8')) as { input: unknown }).input).toEqual({ nested: { x: 1, y: 2 } });
  });
});
