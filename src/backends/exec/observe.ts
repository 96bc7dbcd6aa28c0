/**
 * The exec protocol's pure half lives in src/infra/exec-protocol.ts, shared
 * with the script backend (backends never import each other).
 */
export {
  badOutput,
  checkDelete,
  EX_NOPERM,
  EX_TEMPFAIL,
  inputDiffs,
  parseApply,
  parseRead,
  successOutput,
  toObservation,
} from '../../infra/index.ts';
export type { ExecCommand, ReadResult } from '../../infra/index.ts';
