import type { DiagnosticBag, GoalInfo } from '../../runtime/index.ts';
import type { PolicySpecInput } from './schema.ts';

/**
 * A built-in pack's levels are keyed by environment name (baseline's
 * stricter ones by `prod`), and a goal's environment is free text: a goal
 * in `production` would get only the pack's default levels (warnings where
 * prod blocks), silently. Its name says what its owner meant, so where it
 * looks like production and no level of the pack is for it, that is said.
 */

/** Words that say production in an environment's name (`production`, `prd`, `eu-prod`, `prod_2`). */
const PRODUCTION_WORDS: ReadonlySet<string> = new Set(['prod', 'production', 'prd']);
/** Words that say it is not (`pre-prod`, `non-prod`). */
const NOT_PRODUCTION_WORDS: ReadonlySet<string> = new Set(['pre', 'non', 'not']);

/** Whether an environment's name reads as production. */
export function looksLikeProduction(environment: string): boolean {
  const words = environment.toLowerCase().split(/[^a-z0-9]+/).map((w) => w.replace(/[0-9]+$/, ''));
  return words.some((w) => PRODUCTION_WORDS.has(w)) && !words.some((w) => NOT_PRODUCTION_WORDS.has(w));
}

/** The environments a pack names in its severity maps (`default` aside). */
export function packEnvironments(pack: PolicySpecInput): ReadonlySet<string> {
  const names = new Set<string>();
  for (const entry of [...(pack.naming ?? []), ...(pack.requiredLabels ?? []), ...(pack.rules ?? [])]) {
    for (const name of Object.keys(entry.severity)) if (name !== 'default') names.add(name);
  }
  return names;
}

/**
 * Warns, at each goal's `environment`, where it reads as production but
 * no level of an included pack is for it.
 */
export function warnUnmatchedProduction(goals: readonly GoalInfo[], packs: ReadonlyMap<string, PolicySpecInput>, diag: DiagnosticBag): void {
  for (const [name, pack] of packs) {
    const environments = packEnvironments(pack);
    if (environments.size === 0) continue;
    const named = [...environments].map((e) => `"${e}"`).join(', ');
    for (const goal of goals) {
      if (environments.has(goal.environment) || !looksLikeProduction(goal.environment)) continue;
      diag.warning(
        goal.environmentAt ?? { file: goal.file, line: 1, col: 1 },
        'pack-environment',
        `goal ${goal.name}'s environment "${goal.environment}" looks like production, but the included pack ${name} sets levels for ${environments.size === 1 ? 'the environment' : 'the environments'} ${named} only, so this goal gets the pack's default levels; name the environment ${named.split(', ')[0]} to get the levels set for it`,
      );
    }
  }
}
