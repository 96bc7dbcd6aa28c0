import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

/** Loaded on the first playbook run, not with the backend: most commands never need it. */
const yaml = (): typeof Yaml => createRequire(import.meta.url)('yaml') as typeof Yaml;

/**
 * Extra variables as a YAML vars file in which every string value carries
 * Ansible's `!unsafe` tag, so that Ansible never templates it: a value such
 * as `{{ lookup('pipe','id') }}` reaches the playbook as that literal text.
 * (A JSON file cannot carry the tag; `-e @file.yml` loads it with Ansible's
 * own YAML loader, which honours `!unsafe` at any depth.) Pure.
 */
export function unsafeVarsYaml(vars: Readonly<Record<string, unknown>>): string {
  const { Document, Scalar, visit } = yaml();
  const doc = new Document(vars, { aliasDuplicateObjects: false });
  visit(doc, {
    Scalar(key, node) {
      // Mapping keys are variable or dictionary names, which Ansible does not template.
      if (key === 'key' || typeof node.value !== 'string') return;
      node.tag = '!unsafe';
      node.type = Scalar.QUOTE_DOUBLE;
    },
  });
  return doc.toString({ lineWidth: 0 });
}
