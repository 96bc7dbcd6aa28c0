import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sourceDigest, sourceFingerprint } from '../../scripts/source-digest.js';
import { repoRoot } from '../support/cli.ts';

// bin/desiredstate.js runs dist/ only when dist/build.json names the digest of the sources as
// they are now. Checked on a miniature project: the real launcher and digest, a fake entry point
// in each place that says which one ran.
let root: string;

const entry = (where: string): string => `export async function main(argv, io) { io.out('${where} ' + argv.join(' ')); return 0; }\n`;

function launch(env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(process.execPath, [join(root, 'bin/desiredstate.js'), 'hello'], { encoding: 'utf8', env: { ...process.env, DESIREDSTATE_FROM_SOURCE: '', ...env } }).trim();
}

function build(): void {
  mkdirSync(join(root, 'dist'), { recursive: true });
  writeFileSync(join(root, 'dist/main.js'), entry('from dist'));
  writeFileSync(join(root, 'dist/build.json'), JSON.stringify({ digest: sourceDigest(root), fingerprint: sourceFingerprint(root) }));
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ds-launcher-'));
  for (const d of ['bin', 'scripts', 'src/cli']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(join(repoRoot, 'bin/desiredstate.js'), join(root, 'bin/desiredstate.js'));
  copyFileSync(join(repoRoot, 'scripts/source-digest.js'), join(root, 'scripts/source-digest.js'));
  // The launch itself, a module of the sources whichever entry runs.
  for (const f of ['src/cli/launch.ts', 'src/cli/command-line.ts', 'src/cli/signals.ts']) copyFileSync(join(repoRoot, f), join(root, f));
  writeFileSync(join(root, 'package.json'), '{ "type": "module" }\n');
  writeFileSync(join(root, 'package-lock.json'), '{ "lockfileVersion": 3 }\n');
  // Type stripping only: the fake source entry is valid TypeScript.
  writeFileSync(join(root, 'src/cli/main.ts'), entry('from source').replace('(argv, io)', '(argv: string[], io: { out(t: string): void })'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('bin/desiredstate.js', () => {
  it('runs the sources when there is no bundle', () => {
    expect(launch()).toBe('from source hello');
  });

  it('runs the bundle built from exactly these sources, unless DESIREDSTATE_FROM_SOURCE=1', () => {
    build();
    expect(launch()).toBe('from dist hello');
    expect(launch({ DESIREDSTATE_FROM_SOURCE: '1' })).toBe('from source hello');
  });

  it.each([
    ['a source file edited', () => writeFileSync(join(root, 'src/cli/main.ts'), entry('from source').replace('(argv, io)', '(argv: string[], io: { out(t: string): void })') + '// edited\n')],
    ['a source file added', () => writeFileSync(join(root, 'src/cli/extra.ts'), 'export const x = 1;\n')],
    ['the dependencies changed', () => writeFileSync(join(root, 'package-lock.json'), '{ "lockfileVersion": 3, "packages": {} }\n')],
    ['an unreadable build record', () => writeFileSync(join(root, 'dist/build.json'), '{ not json')],
  ])('falls back to the sources after %s', (_what, change) => {
    build();
    change();
    expect(launch()).toBe('from source hello');
  });

  it('a build record without the stat fingerprint is checked by content', () => {
    build();
    writeFileSync(join(root, 'dist/build.json'), JSON.stringify({ digest: sourceDigest(root) }));
    expect(launch()).toBe('from dist hello');
  });

  it('the digest is about content, not timestamps: touching a file keeps the bundle', () => {
    build();
    utimesSync(join(root, 'src/cli/main.ts'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    expect(launch()).toBe('from dist hello');
  });
});
