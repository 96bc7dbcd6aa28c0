import { describe, expect, it } from 'vitest';
import { desiredNodeSpec, resourceBackend, SecretMask } from '../../src/infra/index.ts';
import type { BackendNode, InfraBackend, ResourceContext, ResourceProvisioner } from '../../src/infra/index.ts';
import { fault, FaultError } from '../../src/runtime/index.ts';
import type { Observation, ProvisionResult } from '../../src/runtime/index.ts';
import { opContext } from '../support/backend.ts';

/** A value every call may quote (an allowlisted token), and one a single call resolved for its run. */
const WIDE = 'tok-S3CRET-4711';
const RUN = 'run-S3CRET-0815';

const node: BackendNode = {
  id: 'n',
  goal: 'test',
  spec: desiredNodeSpec({ type: 'generic.resource', input: {} }, 'fake'),
  dependsOn: [],
  settings: { selfHeal: true, prune: false, deletionPolicy: 'Orphan', ignoreFields: [] },
  source: { file: 'test.yaml', line: 1, col: 1 },
};

/** A provisioner whose every call runs `answer`: what a backend's observe or provision would do. `wide: false`: it has no mask of its own. */
function fake(answer: (ctx: ResourceContext) => Promise<unknown>, options: { wide?: boolean } = {}): ResourceProvisioner {
  return {
    kinds: ['generic.resource'],
    mask: options.wide === false ? undefined : new SecretMask([WIDE]),
    observe: (_node, ctx) => answer(ctx) as Promise<Observation>,
    provision: (_node, _intent, ctx) => answer(ctx) as Promise<ProvisionResult>,
  };
}

async function observe(p: ResourceProvisioner): Promise<Observation> {
  return (await resourceBackend('fake', 'fake', p).observe([node], opContext())).get('n')!;
}

const quoting = (secret: string) => `auth failed with ${secret}`;

describe('resourceBackend masks what a provisioner call answers', () => {
  it.each([
    {
      name: 'a thrown FaultError keeps its class and code',
      answer: () => Promise.reject(new FaultError(fault('auth', quoting(WIDE), { code: 'denied', hint: `rotate ${WIDE}` }))),
      expected: { status: 'failed', fault: { class: 'auth', code: 'denied', message: 'auth failed with <secret>', hint: 'rotate <secret>' } },
    },
    {
      name: 'anything else thrown is an unknown fault',
      answer: () => Promise.reject(new Error(quoting(WIDE))),
      expected: { status: 'failed', fault: { class: 'unknown', message: 'auth failed with <secret>' } },
    },
    {
      name: 'a failed observation returned',
      answer: () => Promise.resolve({ status: 'failed', fault: fault('transient', quoting(WIDE)) }),
      expected: { status: 'failed', fault: { class: 'transient', message: 'auth failed with <secret>' } },
    },
    {
      name: 'an indeterminate reason',
      answer: () => Promise.resolve({ status: 'indeterminate', reason: quoting(WIDE) }),
      expected: { status: 'indeterminate', reason: 'auth failed with <secret>' },
    },
    {
      name: 'drift values and detail, at any depth',
      answer: () => Promise.resolve({ status: 'drifted', diffs: [{ path: 'input.token', desired: { t: [WIDE] }, actual: 'x', detail: `-${WIDE}` }] }),
      expected: { status: 'drifted', diffs: [{ path: 'input.token', desired: { t: ['<secret>'] }, actual: 'x', detail: '-<secret>' }] },
    },
    {
      name: 'a value the call added for its run',
      answer: (ctx: ResourceContext) => {
        ctx.addSecrets([RUN]);
        return Promise.reject(new Error(`${quoting(RUN)} and ${WIDE}`));
      },
      expected: { status: 'failed', fault: { message: 'auth failed with <secret> and <secret>' } },
    },
    {
      name: 'a value the call added, without a provisioner-wide mask',
      answer: (ctx: ResourceContext) => {
        ctx.addSecrets([RUN]);
        return Promise.reject(new Error(quoting(RUN)));
      },
      wide: false,
      expected: { status: 'failed', fault: { message: 'auth failed with <secret>' } },
    },
  ])('observe: $name', async ({ answer, expected, wide }) => {
    const obs = await observe(fake(answer, { wide }));
    expect(obs).toMatchObject(expected);
    expect(JSON.stringify(obs)).not.toContain('S3CRET');
  });

  // Outputs are stored, shown and handed to dependents: what a program printed, without the secrets.
  it.each([
    { name: 'observe, up to date', call: (b: InfraBackend) => b.observe([node], opContext()).then((m) => m.get('n')!), status: 'upToDate' },
    { name: 'observe, drifted', call: (b: InfraBackend) => b.observe([node], opContext()).then((m) => m.get('n')!), status: 'drifted' },
    { name: 'create', call: (b: InfraBackend) => b.create(node, opContext()), status: 'done' },
    { name: 'update', call: (b: InfraBackend) => b.update(node, [], opContext()), status: 'done' },
  ])('$name: the secrets in outputs are masked, the provisioner\'s and those the call added', async ({ call, status }) => {
    const answer = (ctx: ResourceContext): Promise<unknown> => {
      ctx.addSecrets([RUN]);
      const outputs = { token: WIDE, password: RUN, url: `postgres://app:${RUN}@db`, id: 'vm-1' };
      return Promise.resolve(status === 'drifted' ? { status, diffs: [], outputs } : { status, outputs });
    };
    const r = await call(resourceBackend('fake', 'fake', fake(answer)));
    expect(r).toMatchObject({ status, outputs: { token: '<secret>', password: '<secret>', url: 'postgres://app:<secret>@db', id: 'vm-1' } });
    expect(JSON.stringify(r)).not.toContain('S3CRET');
  });

  it('in outputs, a long allowlisted value under an ordinary name is left as it is (messages mask it)', async () => {
    const p: ResourceProvisioner = {
      ...fake(() => Promise.resolve({ status: 'done', outputs: { region: 'eu-west-1-prod', token: 'tok-0815' } })),
      mask: SecretMask.fromEnv({ REGION: 'eu-west-1-prod', API_TOKEN: 'tok-0815' }),
    };
    expect(await resourceBackend('fake', 'fake', p).create(node, opContext())).toEqual({ status: 'done', outputs: { region: 'eu-west-1-prod', token: '<secret>' } });
  });

  it.each([
    { name: 'thrown', answer: () => Promise.reject(new FaultError(fault('permanent', quoting(WIDE), { code: 'bad' }))) },
    { name: 'returned', answer: () => Promise.resolve({ status: 'failed', fault: fault('permanent', quoting(WIDE), { code: 'bad' }) }) },
    {
      name: 'thrown after the call added a value',
      answer: (ctx: ResourceContext) => {
        ctx.addSecrets([RUN]);
        return Promise.reject(new FaultError(fault('permanent', `${quoting(RUN)} and ${WIDE}`, { code: 'bad' })));
      },
    },
  ])('create, update and delete: a fault $name is masked', async ({ answer }) => {
    const b = resourceBackend('fake', 'fake', fake(answer));
    for (const r of [await b.create(node, opContext()), await b.update(node, [], opContext()), await b.delete(node, opContext())]) {
      expect(r).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: 'bad' } });
      expect(r.status === 'failed' ? r.fault.message : '').toMatch(/^auth failed with <secret>/);
      expect(JSON.stringify(r)).not.toContain('S3CRET');
    }
  });

  it('a value one call added is masked in that call only', async () => {
    let calls = 0;
    const b = resourceBackend(
      'fake',
      'fake',
      fake((ctx) => {
        calls += 1;
        if (calls === 1) ctx.addSecrets([RUN]);
        return Promise.reject(new Error(quoting(RUN)));
      }),
    );
    expect(await b.create(node, opContext())).toMatchObject({ fault: { message: 'auth failed with <secret>' } });
    // The next run resolved nothing: it was handed no such value, so it has nothing of it to hide.
    expect(await b.create(node, opContext())).toMatchObject({ fault: { message: quoting(RUN) } });
  });
});
