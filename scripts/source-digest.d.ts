/** Hex SHA-256 over src/**\/*.ts (paths and contents) and package-lock.json under `root`. */
export function sourceDigest(root: string): string;
/** Hex SHA-256 over the path, size and mtime of the same files: unchanged, the digest recorded with it still holds. */
export function sourceFingerprint(root: string): string;
