/**
 * PostgreSQL's character set names, as its `pg_char_to_encoding` reads them: case and every
 * character that is not a letter or a digit are ignored (`utf-8`, `UTF8` and `Utf_8` are one
 * name), and each name is the encoding itself or one of its aliases (`unicode` is UTF8,
 * `ISO-8859-1` is LATIN1, `win` is WIN1251). The names and aliases are the ones PostgreSQL lists
 * (src/common/encnames.c); they have not changed since PostgreSQL 8.3.
 */

/** The encodings a database can have, by their canonical names (what `pg_encoding_to_char` answers). */
const SERVER_ENCODINGS = [
  'SQL_ASCII', 'EUC_JP', 'EUC_CN', 'EUC_KR', 'EUC_TW', 'EUC_JIS_2004', 'UTF8', 'MULE_INTERNAL',
  'LATIN1', 'LATIN2', 'LATIN3', 'LATIN4', 'LATIN5', 'LATIN6', 'LATIN7', 'LATIN8', 'LATIN9', 'LATIN10',
  'WIN1256', 'WIN1258', 'WIN866', 'WIN874', 'KOI8R', 'WIN1251', 'WIN1252',
  'ISO_8859_5', 'ISO_8859_6', 'ISO_8859_7', 'ISO_8859_8', 'WIN1250', 'WIN1253', 'WIN1254', 'WIN1255', 'WIN1257', 'KOI8U',
] as const;

/** Encodings only a client may use: CREATE DATABASE refuses them. */
const CLIENT_ENCODINGS = ['SJIS', 'BIG5', 'GBK', 'UHC', 'GB18030', 'JOHAB', 'SHIFT_JIS_2004'] as const;

/** Aliases beside the canonical names, each cleaned as PostgreSQL cleans a name (see `cleanName`). */
const ALIASES: Readonly<Record<string, string>> = {
  abc: 'WIN1258', tcvn: 'WIN1258', tcvn5712: 'WIN1258', vscii: 'WIN1258', windows1258: 'WIN1258',
  alt: 'WIN866', windows866: 'WIN866',
  iso88591: 'LATIN1', iso88592: 'LATIN2', iso88593: 'LATIN3', iso88594: 'LATIN4', iso88599: 'LATIN5',
  iso885910: 'LATIN6', iso885913: 'LATIN7', iso885914: 'LATIN8', iso885915: 'LATIN9', iso885916: 'LATIN10',
  koi8: 'KOI8R',
  unicode: 'UTF8',
  win: 'WIN1251', windows1251: 'WIN1251',
  windows1250: 'WIN1250', windows1252: 'WIN1252', windows1253: 'WIN1253', windows1254: 'WIN1254',
  windows1255: 'WIN1255', windows1256: 'WIN1256', windows1257: 'WIN1257', windows874: 'WIN874',
  mskanji: 'SJIS', shiftjis: 'SJIS', win932: 'SJIS', windows932: 'SJIS',
  win936: 'GBK', windows936: 'GBK',
  win949: 'UHC', windows949: 'UHC',
  win950: 'BIG5', windows950: 'BIG5',
};

/** As PostgreSQL compares names: ASCII letters and digits only, lower case. */
function cleanName(name: string): string {
  return name.replace(/[^A-Za-z0-9]/g, '').toLowerCase();
}

const BY_CLEAN_NAME: ReadonlyMap<string, { readonly name: string; readonly server: boolean }> = new Map([
  ...SERVER_ENCODINGS.map((e) => [cleanName(e), { name: e, server: true }] as const),
  ...CLIENT_ENCODINGS.map((e) => [cleanName(e), { name: e, server: false }] as const),
  ...Object.entries(ALIASES).map(([alias, e]) => [alias, { name: e, server: (SERVER_ENCODINGS as readonly string[]).includes(e) }] as const),
]);

/**
 * The encoding PostgreSQL reads `name` as: its canonical name (`unicode` → `UTF8`) and whether a
 * database can have it; undefined for a name PostgreSQL does not know.
 */
export function pgEncoding(name: string): { readonly name: string; readonly server: boolean } | undefined {
  // PostgreSQL looks no further than 63 bytes.
  if (Buffer.byteLength(name, 'utf8') >= 64) return undefined;
  return BY_CLEAN_NAME.get(cleanName(name));
}

/**
 * An encoding by the name PostgreSQL answers for it (`pg_encoding_to_char`): `utf-8`, `UTF8` and its
 * alias `unicode` are one encoding, as are `LATIN1` and `ISO-8859-1`; a name it does not know stays
 * itself, upper case. What a database is created with and compared by.
 */
export function canonicalEncoding(name: string): string {
  return pgEncoding(name)?.name ?? name.toUpperCase();
}
