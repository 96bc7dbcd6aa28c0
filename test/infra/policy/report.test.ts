import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { checkReport, formatCheck, SARIF_VERSION, toSarif } from '../../../src/infra/policy/index.ts';
import type { CheckReport, Finding } from '../../../src/infra/policy/index.ts';
import { compileTexts } from './helpers.ts';

const dir = 'test/fixtures/policy/org';

/** The fixture with two slips: a prod naming slip (blocks) and a dev one (warns), plus public access in dev (warns). */
async function slipReport(): Promise<CheckReport> {
  const files: Record<string, string> = {};
  for (const f of ['dev.yaml', 'policy.yaml', 'prod.yaml']) files[`${dir}/${f}`] = await readFile(`${dir}/${f}`, 'utf8');
  files[`${dir}/prod.yaml`] = files[`${dir}/prod.yaml`]!.replace('name: prod-payments-invoices', 'name: payments-invoices');
  files[`${dir}/dev.yaml`] = files[`${dir}/dev.yaml`]!.replace('name: dev-payments-ledger', 'name: ledger').replace('region: eu-west-1\n', 'region: eu-west-1\n        publicAccess: true\n');
  const { engine } = compileTexts(files);
  return engine.checkReport();
}

describe('checkReport', () => {
  it('gives a verdict per node and per goal', async () => {
    const r = await slipReport();
    expect(r.verdict).toBe('block');
    expect(r.goals.map((g) => `${g.name} ${g.environment} ${g.verdict} ${g.counts.block}/${g.counts.warn}/${g.counts.pass}`)).toEqual([
      'payments-dev dev warn 0/2/2',
      'payments-prod prod block 1/0/3',
    ]);
    expect(r.summary).toMatchObject({ goals: 2, nodes: 8, verdicts: { block: 1, warn: 2, pass: 5 }, findings: 4 });
  });

  it('groups findings by framework', async () => {
    const r = await slipReport();
    expect(r.frameworks.map((f) => `${f.framework} ${f.verdict} ${f.findings.length}`)).toEqual([
      'SOC2 block 4',
      'PCI-DSS warn 2',
      'HIPAA warn 1',
      'ISO27001 warn 0',
      'NIST-800-53 warn 1',
      'CIS warn 1',
    ].filter((l) => !l.endsWith(' 0')));
  });

  it.each([
    { name: 'no finding passes', findings: [] as Finding[], want: 'pass' },
    { name: 'info alone passes', findings: [finding({ severity: 'info' })], want: 'pass' },
    { name: 'a non-blocking finding warns', findings: [finding({ severity: 'low' })], want: 'warn' },
    { name: 'a blocking finding blocks', findings: [finding({ severity: 'info' }), finding({ severity: 'high', blocking: true })], want: 'block' },
  ])('verdict: $name', ({ findings, want }) => {
    const r = checkReport(findings, { nodes: [], goals: [] });
    expect(r.verdict).toBe(want);
  });

  it('text is severity-tagged, per goal and node, then by framework', async () => {
    const text = formatCheck(await slipReport(), 'text');
    expect(text).toContain('policy check: BLOCK (2 goals, 8 nodes: 1 block, 2 warn, 5 pass; 4 findings)');
    expect(text).toContain('goal payments-prod (prod) test/fixtures/policy/org/prod.yaml: BLOCK');
    expect(text).toContain('  BLOCK payments-prod-invoices (aws.s3.bucket) test/fixtures/policy/org/prod.yaml:15:11');
    expect(text).toContain('    HIGH (blocks) naming:name: spec.name "payments-invoices" does not match ^prod-payments-[a-z0-9-]+$ (policy acme-standards; test/fixtures/policy/org/prod.yaml:19:15) [SOC2]');
    expect(text).toContain('  3 nodes pass');
    expect(text).toMatch(/by framework:\n {2}SOC2: BLOCK \(4 findings on 3 nodes: 1 high, 2 medium, 1 low\)/);
    // One of each is said so, not "1 findings on 1 nodes".
    expect(text).toMatch(/\n {2}HIPAA: WARN \(1 finding on 1 node: /);
  });

  // Scripts read `check --format json`: a key renamed or dropped breaks them, so the shape is pinned here.
  it('JSON keeps its shape: the keys at every level', async () => {
    const doc = JSON.parse(formatCheck(await slipReport(), 'json')) as Record<string, unknown> & { goals: Record<string, unknown>[]; frameworks: Record<string, unknown>[]; rules: Record<string, unknown>[]; findings: Record<string, unknown>[] };
    const keys = (o: object): string[] => Object.keys(o).sort();
    const goal = doc.goals[1]! as Record<string, unknown> & { nodes: Record<string, unknown>[] };
    const blocked = goal.nodes.find((n) => n['verdict'] === 'block')!;
    expect({
      top: keys(doc),
      summary: keys(doc['summary'] as object),
      goal: keys(goal),
      node: keys(blocked),
      finding: keys(doc.findings[0]!),
      location: keys(doc.findings[0]!['location'] as object),
      framework: keys(doc.frameworks[0]!),
      rule: keys(doc.rules[0]!),
    }).toEqual({
      top: ['diagnostics', 'findings', 'frameworks', 'goals', 'rules', 'summary', 'verdict'],
      summary: ['bySeverity', 'findings', 'goals', 'nodes', 'verdicts'],
      goal: ['counts', 'environment', 'file', 'name', 'nodes', 'verdict'],
      node: ['findings', 'id', 'location', 'type', 'verdict'],
      finding: ['blocking', 'description', 'environment', 'frameworks', 'goal', 'kind', 'location', 'message', 'node', 'policy', 'rule', 'severity', 'type'],
      location: ['col', 'file', 'line'],
      framework: ['bySeverity', 'findings', 'framework', 'nodes', 'verdict'],
      rule: ['description', 'frameworks', 'id', 'kind', 'policy'],
    });
  });

  it('JSON is the report itself', async () => {
    const r = await slipReport();
    expect(JSON.parse(formatCheck(r, 'json'))).toEqual(JSON.parse(JSON.stringify(r)));
  });
});

/**
 * The SARIF 2.1.0 JSON schema is not reachable from here (no network), so
 * this checks, by hand, the properties the schema requires and those that
 * code-review tools read; keep it in step with the schema at
 * https://json.schemastore.org/sarif-2.1.0.json.
 */
function sarifProblems(log: unknown): string[] {
  const problems: string[] = [];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const need = (cond: boolean, what: string): void => {
    if (!cond) problems.push(what);
  };
  const posInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 1;
  if (!isObj(log)) return ['log is not an object'];
  need(log['version'] === '2.1.0', 'version is "2.1.0"');
  need(typeof log['$schema'] === 'string' && /sarif-2\.1\.0/.test(log['$schema']), '$schema names sarif 2.1.0');
  const runs = log['runs'];
  if (!Array.isArray(runs) || runs.length === 0) return [...problems, 'runs is a non-empty array'];
  for (const [ri, run] of runs.entries()) {
    if (!isObj(run)) {
      problems.push(`runs[${ri}] is an object`);
      continue;
    }
    const driver = isObj(run['tool']) && isObj(run['tool']['driver']) ? run['tool']['driver'] : undefined;
    if (driver === undefined) {
      problems.push(`runs[${ri}].tool.driver is an object`);
      continue;
    }
    need(typeof driver['name'] === 'string' && driver['name'] !== '', 'driver.name is a non-empty string');
    const rules = Array.isArray(driver['rules']) ? (driver['rules'] as unknown[]) : [];
    const ids = new Set<string>();
    for (const [i, rule] of rules.entries()) {
      if (!isObj(rule) || typeof rule['id'] !== 'string') {
        problems.push(`rules[${i}].id is a string`);
        continue;
      }
      need(!ids.has(rule['id']), `rules[${i}].id is unique`);
      ids.add(rule['id']);
      need(isObj(rule['shortDescription']) && typeof rule['shortDescription']['text'] === 'string', `rules[${i}].shortDescription.text is a string`);
      const props = rule['properties'];
      need(!isObj(props) || props['tags'] === undefined || (Array.isArray(props['tags']) && props['tags'].every((t) => typeof t === 'string')), `rules[${i}].properties.tags are strings`);
    }
    const results = run['results'];
    need(Array.isArray(results), 'results is an array');
    for (const [i, res] of (Array.isArray(results) ? results : []).entries()) {
      if (!isObj(res)) {
        problems.push(`results[${i}] is an object`);
        continue;
      }
      need(isObj(res['message']) && typeof res['message']['text'] === 'string', `results[${i}].message.text is a string`);
      need(['none', 'note', 'warning', 'error'].includes(res['level'] as string), `results[${i}].level is none|note|warning|error`);
      need(typeof res['ruleId'] === 'string' && ids.has(res['ruleId']), `results[${i}].ruleId names a rule`);
      if (res['ruleIndex'] !== undefined) {
        need(Number.isInteger(res['ruleIndex']) && isObj(rules[res['ruleIndex'] as number]) && (rules[res['ruleIndex'] as number] as Record<string, unknown>)['id'] === res['ruleId'], `results[${i}].ruleIndex points at its rule`);
      }
      const locs = res['locations'];
      need(Array.isArray(locs) && locs.length > 0, `results[${i}].locations is non-empty`);
      for (const loc of Array.isArray(locs) ? locs : []) {
        const phys = isObj(loc) && isObj(loc['physicalLocation']) ? loc['physicalLocation'] : undefined;
        const uri = phys !== undefined && isObj(phys['artifactLocation']) ? phys['artifactLocation']['uri'] : undefined;
        need(typeof uri === 'string' && uri !== '' && !/\s/.test(uri), `results[${i}] artifactLocation.uri is a URI reference`);
        const region = phys !== undefined && isObj(phys['region']) ? phys['region'] : undefined;
        need(region !== undefined && posInt(region['startLine']) && posInt(region['startColumn']), `results[${i}] region.startLine/startColumn are integers >= 1`);
      }
    }
  }
  return problems;
}

describe('SARIF 2.1.0', () => {
  it('the log passes the structural validator', async () => {
    const text = formatCheck(await slipReport(), 'sarif');
    expect(sarifProblems(JSON.parse(text))).toEqual([]);
  });

  it('rules carry frameworks as tags; results carry level, message and the goal file location', async () => {
    const log = toSarif(await slipReport());
    expect(log.version).toBe(SARIF_VERSION);
    const run = log.runs[0]!;
    expect(run.tool.driver.name).toBe('desiredstate');
    expect(run.tool.driver.rules.find((r) => r.id === 'naming:name')).toMatchObject({ shortDescription: { text: expect.any(String) }, properties: { tags: ['SOC2'] } });
    expect(run.tool.driver.rules.find((r) => r.id === 'baseline.no-public-access')?.properties.tags).toEqual(['SOC2', 'PCI-DSS', 'HIPAA', 'NIST-800-53', 'CIS']);
    const blocking = run.results.find((r) => r.level === 'error')!;
    expect(blocking).toMatchObject({
      ruleId: 'naming:name',
      message: { text: expect.stringContaining('payments-invoices') },
      locations: [{ physicalLocation: { artifactLocation: { uri: 'test/fixtures/policy/org/prod.yaml' }, region: { startLine: 19, startColumn: 15 } } }],
    });
    expect(run.results.map((r) => r.level).sort()).toEqual(['error', 'warning', 'warning', 'warning']);
  });

  it.each([
    { name: 'blocking is error', f: finding({ severity: 'low', blocking: true }), level: 'error' },
    { name: 'info is a note', f: finding({ severity: 'info' }), level: 'note' },
    { name: 'the rest are warnings', f: finding({ severity: 'high' }), level: 'warning' },
  ])('level: $name', ({ f, level }) => {
    const log = toSarif(checkReport([f], { nodes: [], goals: [] }));
    expect(log.runs[0]!.results[0]!.level).toBe(level);
    expect(sarifProblems(log)).toEqual([]);
  });

  it('a rule id two policies share is qualified by policy', () => {
    const log = toSarif(checkReport([finding({ policy: 'a' }), finding({ policy: 'b' })], { nodes: [], goals: [] }));
    expect(log.runs[0]!.results.map((r) => r.ruleId)).toEqual(['a/r', 'b/r']);
    expect(sarifProblems(log)).toEqual([]);
  });

  it('paths with spaces are percent-encoded', () => {
    const log = toSarif(checkReport([finding({ location: { file: 'goals/my app.yaml', line: 3, col: 5 } })], { nodes: [], goals: [] }));
    expect(log.runs[0]!.results[0]!.locations[0]!.physicalLocation.artifactLocation.uri).toBe('goals/my%20app.yaml');
  });
});

function finding(over: Partial<Finding>): Finding {
  return {
    policy: 'org',
    rule: 'r',
    kind: 'rule',
    severity: 'medium',
    blocking: false,
    message: 'broken',
    description: 'a rule',
    frameworks: [],
    node: 'n',
    type: 'local.file',
    goal: 'g',
    environment: 'dev',
    location: { file: 'goals/g.yaml', line: 3, col: 5 },
    ...over,
  };
}
