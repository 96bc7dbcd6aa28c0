import { linkSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { replaceFile } from '../../src/runtime/index.ts';

describe('replaceFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ds-replace-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the file with what was written and leaves nothing beside it', () => {
    const path = join(dir, 'a.json');
    writeFileSync(path, 'old');
    replaceFile(path, (tmp) => writeFileSync(tmp, 'new'));
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(readdirSync(dir).filter((f) => f.startsWith('a.json'))).toEqual(['a.json']);
  });

  it('a write that throws leaves the old file and no temp file', () => {
    const path = join(dir, 'b.json');
    writeFileSync(path, 'old');
    expect(() =>
      replaceFile(path, (tmp) => {
        writeFileSync(tmp, 'half');
        throw new Error('disk full');
      }),
    ).toThrow('disk full');
    expect(readFileSync(path, 'utf8')).toBe('old');
    expect(readdirSync(dir).filter((f) => f.startsWith('b.json'))).toEqual(['b.json']);
  });

  it('a link to the file it already is (a rename that does nothing) leaves no temp file', () => {
    const source = join(dir, 'compiled.json');
    const path = join(dir, 'last-good.json');
    writeFileSync(source, 'goals');
    replaceFile(path, (tmp) => linkSync(source, tmp));
    replaceFile(path, (tmp) => linkSync(source, tmp));
    expect(statSync(path).ino).toBe(statSync(source).ino);
    expect(readdirSync(dir).filter((f) => f.startsWith('last-good.json'))).toEqual(['last-good.json']);
  });

  it('a temp file a killed process of the same pid left does not stop the next one', () => {
    const source = join(dir, 'c-source.json');
    const path = join(dir, 'c.json');
    writeFileSync(source, 'v2');
    writeFileSync(path, 'v1');
    // What the pid-named temp file of an earlier process (pid 1 in each restart of a container) was called.
    writeFileSync(`${path}.${process.pid}.tmp`, 'left by kill -9');
    replaceFile(path, (tmp) => linkSync(source, tmp));
    expect(readFileSync(path, 'utf8')).toBe('v2');
  });
});
