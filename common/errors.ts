/**
 * One error family for the whole project. Codes are permanent (callers and tests branch on
 * them); messages may change. `exitCode` and `httpStatus` are looked up in one table.
 */
export type PalisadeErrorCode =
  | 'PALISADE_ERR_INVALID_ARGUMENT'
  | 'PALISADE_ERR_CONFIG_INVALID'
  | 'PALISADE_ERR_WORKLOADS_INVALID'
  | 'PALISADE_ERR_NETNS'
  | 'PALISADE_ERR_BPFFS'
  | 'PALISADE_ERR_CGROUP'
  | 'PALISADE_ERR_BPF_LOAD'
  | 'PALISADE_ERR_BPF_ATTACH'
  | 'PALISADE_ERR_BPF_MAP'
  | 'PALISADE_ERR_KERNEL_UNSUPPORTED'
  | 'PALISADE_ERR_NATIVE_LOAD'
  | 'PALISADE_ERR_AGENT_RUNNING'
  | 'PALISADE_ERR_NOT_INSTALLED'
  | 'PALISADE_ERR_LISTEN'
  | 'PALISADE_ERR_NO_ORIGINAL_DST'
  | 'PALISADE_ERR_NOT_FOUND'
  | 'PALISADE_ERR_DATA_DIR'
  | 'PALISADE_ERR_CSR_REFUSED'
  | 'PALISADE_ERR_JOIN_REFUSED'
  | 'PALISADE_ERR_UNAUTHENTICATED'
  | 'PALISADE_ERR_REGISTRATION_REFUSED'
  | 'PALISADE_ERR_PROTOCOL'
  | 'PALISADE_ERR_COLLECTOR_UNAVAILABLE'
  | 'PALISADE_ERR_IDENTITY'
  | 'PALISADE_ERR_HBONE'
  | 'PALISADE_ERR_POLICY_INVALID'
  | 'PALISADE_ERR_POLICY_DENIED'
  | 'PALISADE_ERR_CONFLICT'
  | 'PALISADE_ERR_FORBIDDEN'
  | 'PALISADE_ERR_KUBERNETES'
  | 'PALISADE_ERR_NODE_FULL'
  | 'PALISADE_ERR_INTERNAL';

interface CodeInfo {
  exitCode: number;
  httpStatus: number;
}

/** The one place that maps error codes to process exit codes and HTTP status. */
const CODE_TABLE: Record<PalisadeErrorCode, CodeInfo> = {
  PALISADE_ERR_INVALID_ARGUMENT: { exitCode: 2, httpStatus: 400 },
  PALISADE_ERR_CONFIG_INVALID: { exitCode: 2, httpStatus: 400 },
  PALISADE_ERR_WORKLOADS_INVALID: { exitCode: 2, httpStatus: 400 },
  PALISADE_ERR_NETNS: { exitCode: 1, httpStatus: 400 },
  PALISADE_ERR_BPFFS: { exitCode: 1, httpStatus: 500 },
  PALISADE_ERR_CGROUP: { exitCode: 1, httpStatus: 500 },
  PALISADE_ERR_BPF_LOAD: { exitCode: 1, httpStatus: 500 },
  PALISADE_ERR_BPF_ATTACH: { exitCode: 1, httpStatus: 500 },
  PALISADE_ERR_BPF_MAP: { exitCode: 1, httpStatus: 500 },
  PALISADE_ERR_KERNEL_UNSUPPORTED: { exitCode: 1, httpStatus: 500 },
  PALISADE_ERR_NATIVE_LOAD: { exitCode: 1, httpStatus: 500 },
  PALISADE_ERR_AGENT_RUNNING: { exitCode: 1, httpStatus: 409 },
  PALISADE_ERR_NOT_INSTALLED: { exitCode: 1, httpStatus: 404 },
  PALISADE_ERR_LISTEN: { exitCode: 1, httpStatus: 500 },
  PALISADE_ERR_NO_ORIGINAL_DST: { exitCode: 1, httpStatus: 403 },
  PALISADE_ERR_NOT_FOUND: { exitCode: 1, httpStatus: 404 },
  PALISADE_ERR_DATA_DIR: { exitCode: 1, httpStatus: 500 },
  PALISADE_ERR_CSR_REFUSED: { exitCode: 1, httpStatus: 403 },
  PALISADE_ERR_JOIN_REFUSED: { exitCode: 1, httpStatus: 401 },
  PALISADE_ERR_UNAUTHENTICATED: { exitCode: 1, httpStatus: 401 },
  PALISADE_ERR_REGISTRATION_REFUSED: { exitCode: 1, httpStatus: 409 },
  PALISADE_ERR_PROTOCOL: { exitCode: 1, httpStatus: 400 },
  PALISADE_ERR_COLLECTOR_UNAVAILABLE: { exitCode: 1, httpStatus: 503 },
  PALISADE_ERR_IDENTITY: { exitCode: 1, httpStatus: 503 },
  PALISADE_ERR_HBONE: { exitCode: 1, httpStatus: 502 },
  PALISADE_ERR_POLICY_INVALID: { exitCode: 1, httpStatus: 400 },
  PALISADE_ERR_POLICY_DENIED: { exitCode: 1, httpStatus: 403 },
  PALISADE_ERR_CONFLICT: { exitCode: 1, httpStatus: 409 },
  PALISADE_ERR_FORBIDDEN: { exitCode: 1, httpStatus: 403 },
  PALISADE_ERR_KUBERNETES: { exitCode: 1, httpStatus: 502 },
  PALISADE_ERR_NODE_FULL: { exitCode: 1, httpStatus: 503 },
  PALISADE_ERR_INTERNAL: { exitCode: 70, httpStatus: 500 },
};

export class PalisadeError extends Error {
  readonly code: PalisadeErrorCode;
  /** Errno name of the underlying syscall failure, when there was one (e.g. `EPERM`). */
  readonly errnoCode: string | undefined;

  constructor(code: PalisadeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PalisadeError';
    this.code = code;
    this.errnoCode = errorCode(options?.cause);
  }

  get exitCode(): number {
    return CODE_TABLE[this.code].exitCode;
  }

  get httpStatus(): number {
    return CODE_TABLE[this.code].httpStatus;
  }
}

export function isPalisadeError(err: unknown): err is PalisadeError {
  return err instanceof PalisadeError;
}

/** Error shape thrown by the native addon for a failed syscall (mirrors Node's errno errors). */
export interface SyscallError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

export function isSyscallError(err: unknown): err is SyscallError {
  return err instanceof Error && errorCode(err) !== undefined && typeof (err as Partial<SyscallError>).syscall === 'string';
}

/** `EPERM (bpf_prog_load)`-style suffix for one-line messages. */
export function describeCause(err: unknown): string {
  if (isSyscallError(err)) return `${err.code} from ${err.syscall}`;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A value as one-line messages quote it: JSON (so control characters show), cut at 64 characters. */
export const quoteValue = (v: string): string => JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v);

/** The one-line `PALISADE_ERR_INVALID_ARGUMENT` every input check throws. */
export function invalidArgument(message: string): PalisadeError {
  return new PalisadeError('PALISADE_ERR_INVALID_ARGUMENT', message);
}

/**
 * The error's `code` when it carries one as a string (an errno name such as `ECONNREFUSED`, a
 * Node code such as `ERR_DLOPEN_FAILED`, SQLite's `SQLITE_CONSTRAINT_PRIMARYKEY`), else undefined.
 * The one way to read it: callers branch on this, never on message text.
 */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
