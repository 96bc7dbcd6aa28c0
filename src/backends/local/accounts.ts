/** A name ↔ id table parsed from /etc/passwd or /etc/group. */
export interface AccountTable {
  readonly byName: ReadonlyMap<string, number>;
  readonly byId: ReadonlyMap<number, string>;
}

/** Parses passwd(5) or group(5) text: `name:x:id:…` per line; comments and malformed lines are skipped. */
export function parseAccounts(text: string): AccountTable {
  const byName = new Map<string, number>();
  const byId = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, , idText] = line.split(':');
    if (name === undefined || idText === undefined || !/^\d+$/.test(idText)) continue;
    const id = Number(idText);
    if (!byName.has(name)) byName.set(name, id);
    if (!byId.has(id)) byId.set(id, name);
  }
  return { byName, byId };
}

/** A numeric string is an id as is; a name is looked up. Undefined when unknown. */
export function lookupId(table: AccountTable, nameOrId: string): number | undefined {
  if (/^\d+$/.test(nameOrId)) return Number(nameOrId);
  return table.byName.get(nameOrId);
}
