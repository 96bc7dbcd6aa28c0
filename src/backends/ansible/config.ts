import { z } from 'zod';
import { envAllowlistSchema } from '../../infra/index.ts';
import { durationOrMsSchema, once } from '../../runtime/index.ts';

/** Backend `config` for `type: ansible`. Strict: an unknown field is an error. */
export const ansibleConfigSchema = once(() =>
  z.strictObject({
    ansiblePlaybook: z.string().min(1).default('ansible-playbook').describe('The ansible-playbook program (looked up on PATH unless it has a slash).'),
    timeout: durationOrMsSchema
      .default(600_000)
      .describe('Per run: a duration such as "10m", or milliseconds. The whole process group is killed when it expires.'),
    env: envAllowlistSchema('ansible-playbook (SSH_AUTH_SOCK, for example)'),
    cwd: z.string().min(1).optional().describe("Working directory; playbook and inventory paths resolve against it (default: the daemon's)."),
    stdoutCallback: z
      .string()
      .min(1)
      .default('ansible.posix.json')
      .describe('The JSON stdout callback plugin results are read through (ansible.posix.json; "json" on Ansible before 2.10).'),
    maxOutputBytes: z.number().int().positive().default(64 * 1024 * 1024).describe('Largest JSON report accepted from one run.'),
    hostKeyChecking: z
      .boolean()
      .optional()
      .describe(
        'SSH host key checking. Unset: Ansible\'s own setting (on, unless an ansible.cfg or an allowlisted ANSIBLE_HOST_KEY_CHECKING turns it off). ' +
          'true: on, whatever those say. false: off: any host key is accepted, so a man in the middle goes unnoticed. ' +
          'Inventory variables (ansible_host_key_checking) still decide per host.',
      ),
  }));

export type AnsibleConfig = z.output<ReturnType<typeof ansibleConfigSchema>>;
