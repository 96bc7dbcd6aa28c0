import { execFile } from 'node:child_process';

/** HEAD's commit when `dir` is inside a git work tree, else null. Never throws. */
export function goalsCommit(dir: string): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('git', ['-C', dir, 'rev-parse', '--verify', '--quiet', 'HEAD'], { timeout: 5000 }, (err, stdout) => {
      if (err !== null) return resolve(null);
      const commit = stdout.trim();
      resolve(/^[0-9a-f]{40,64}$/.test(commit) ? commit : null);
    });
  });
}
