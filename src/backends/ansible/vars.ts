import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

/** Loaded on the first playbook run, not with the backend: most commands never need it. */
const yaml = (): typeof Yaml => createRequire(import.meta.url)('yaml') as typeof Yaml;

/** A number as PyYAML (YAML 1.1) reads a plain scalar: an int of digits alone, a float only with a dot. */
const PLAIN_INT = /^-?\d+$/;

/**
 * Extra variables as a YAML vars file that Ansible reads back as exactly
 * the data given. Every string, mapping keys included, is double-quoted and
 * carries Ansible's `!unsafe` tag, so that Ansible never templates it (a
 * value or key such as `{{ lookup('pipe','id') }}` reaches the playbook as
 * that literal text) and its YAML 1.1 loader never re-types it: plain, a key
 * `on` or `yes` would be the boolean true (two such keys collide), `12:30`
 * the integer 750, `2024-01-01` a date. A number that is no integer is
 * tagged `!!float`: plain, `1e+21` would be a string to YAML 1.1, which
 * wants a dot. (A JSON file cannot carry the tag; `-e @file.yml` loads it
 * with Ansible's own YAML loader, which honours `!unsafe` at any depth.) Pure.
 */
export function unsafeVarsYaml(vars: Readonly<Record<string, unknown>>): string {
  const { Document, Scalar, visit } = yaml();
  const doc = new Document(vars, { aliasDuplicateObjects: false });
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string') {
        node.tag = '!unsafe';
        node.type = Scalar.QUOTE_DOUBLE;
      } else if (typeof node.value === 'number' && !PLAIN_INT.test(String(node.value))) {
        node.tag = 'tag:yaml.org,2002:float';
      }
    },
  });
  return doc.toString({ lineWidth: 0 });
}
