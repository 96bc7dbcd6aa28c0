/** Hex SHA-256 over src/**\/*.ts (paths and contents) and package-lock.json under `root`. */
export function sourceDigest(root: string): string;
