import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDirectories } from '../../src/runtime/make-directories.ts';

const dir = mkdtempSync(join(tmpdir(), 'ds-mkdirs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('makeDirectories (mkdir -p)', () => {
  it('makes a directory and the parents it lacks, with the mode given; one already there is kept', () => {
    const deep = join(dir, 'a', 'b', 'c');
    makeDirectories(deep, 0o700);
    for (const d of [join(dir, 'a'), join(dir, 'a', 'b'), deep]) expect(statSync(d).mode & 0o777).toBe(0o700 & ~process.umask());
    makeDirectories(deep);
    expect(existsSync(deep)).toBe(true);
  });

  it('goes through a symlink to a directory, as mkdir -p does, and refuses a file on the way', () => {
    symlinkSync(join(dir, 'a'), join(dir, 'link'));
    makeDirectories(join(dir, 'link', 'x'));
    expect(statSync(join(dir, 'a', 'x')).isDirectory()).toBe(true);
    writeFileSync(join(dir, 'file'), 'x');
    expect(() => makeDirectories(join(dir, 'file', 'x'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
  });

  // Node's own recursive mkdir never returns there (it retries the parent, which exists, for ever).
  it.runIf(existsSync('/proc/self'))('fails under /proc, where a parent cannot be made, rather than looping', () => {
    expect(() => makeDirectories('/proc/desiredstate-nonexistent/x')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
