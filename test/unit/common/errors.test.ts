import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import {
  describeCause,
  isPalisadeError,
  isSyscallError,
  PalisadeError,
  type PalisadeErrorCode,
} from '../../../common/errors';

/** Every code's exit code and HTTP status; the Record type makes a new code fail to compile here. */
const EXPECTED: Record<PalisadeErrorCode, { exitCode: number; httpStatus: number }> = {
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

/** An error shaped like the native addon's (and Node's own) errno errors. */
function syscallError(code: string, syscall: string): Error {
  return Object.assign(new Error(`${syscall}: ${code}`), { code, errno: -1, syscall });
}

describe('errors', () => {
  describe('PalisadeError', () => {
    for (const [code, { exitCode, httpStatus }] of Object.entries(EXPECTED) as [PalisadeErrorCode, { exitCode: number; httpStatus: number }][]) {
      it(`${code} exits ${exitCode} and answers HTTP ${httpStatus}`, () => {
        const err = new PalisadeError(code, 'something went wrong');
        assert.equal(err.code, code);
        assert.equal(err.exitCode, exitCode);
        assert.equal(err.httpStatus, httpStatus);
      });
    }

    it('is an Error named PalisadeError with its message and a stack', () => {
      const err = new PalisadeError('PALISADE_ERR_NOT_FOUND', 'no such workload');
      assert.ok(err instanceof Error);
      assert.equal(err.name, 'PalisadeError');
      assert.equal(err.message, 'no such workload');
      assert.ok(err.stack?.includes('no such workload'));
    });

    it('keeps the cause', () => {
      const cause = syscallError('EPERM', 'bpf');
      assert.equal(new PalisadeError('PALISADE_ERR_BPF_LOAD', 'x', { cause }).cause, cause);
    });

    it('has no cause property when none is given', () => {
      assert.ok(!('cause' in new PalisadeError('PALISADE_ERR_BPF_LOAD', 'x')));
    });

    const errno: [string, unknown, string | undefined][] = [
      ['a syscall error', syscallError('EPERM', 'bpf'), 'EPERM'],
      ['any cause with a string code', { code: 'ENOENT' }, 'ENOENT'],
      ['a Node fs error', fsError(), 'ENOENT'],
      ['a numeric code', { code: 1 }, undefined],
      ['a cause without a code', new Error('plain'), undefined],
      ['a string cause', 'EPERM', undefined],
      ['a null cause', null, undefined],
      ['no cause', undefined, undefined],
    ];
    for (const [what, cause, expected] of errno) {
      it(`errnoCode is ${String(expected)} for ${what}`, () => {
        const err = new PalisadeError('PALISADE_ERR_BPF_MAP', 'x', { cause });
        assert.equal(err.errnoCode, expected);
      });
    }
  });

  describe('isPalisadeError', () => {
    const cases: [string, unknown, boolean][] = [
      ['a PalisadeError', new PalisadeError('PALISADE_ERR_INTERNAL', 'x'), true],
      ['a plain Error', new Error('x'), false],
      ['a look-alike object', { name: 'PalisadeError', code: 'PALISADE_ERR_INTERNAL', message: 'x' }, false],
      ['undefined', undefined, false],
    ];
    for (const [what, value, expected] of cases) {
      it(`is ${expected} for ${what}`, () => assert.equal(isPalisadeError(value), expected));
    }
  });

  describe('isSyscallError', () => {
    const cases: [string, unknown, boolean][] = [
      ['an Error with string code and syscall', syscallError('EPERM', 'bpf'), true],
      ['a Node fs error', fsError(), true],
      ['an Error with a code but no syscall', Object.assign(new Error('x'), { code: 'EPERM' }), false],
      ['an Error with a numeric code', Object.assign(new Error('x'), { code: 1, syscall: 'bpf' }), false],
      ['a plain object of the same shape', { code: 'EPERM', errno: -1, syscall: 'bpf', message: 'x' }, false],
      ['a PalisadeError', new PalisadeError('PALISADE_ERR_BPF_MAP', 'x', { cause: syscallError('EPERM', 'bpf') }), false],
      ['a string', 'EPERM', false],
      ['null', null, false],
    ];
    for (const [what, value, expected] of cases) {
      it(`is ${expected} for ${what}`, () => assert.equal(isSyscallError(value), expected));
    }
  });

  describe('describeCause', () => {
    const cases: [string, unknown, string][] = [
      ['a syscall error as "CODE from syscall"', syscallError('EPERM', 'bpf_prog_load'), 'EPERM from bpf_prog_load'],
      ['a Node fs error the same way', fsError(), 'ENOENT from open'],
      ['an Error by its message', new Error('boom'), 'boom'],
      ['a PalisadeError by its message', new PalisadeError('PALISADE_ERR_NETNS', 'no netns'), 'no netns'],
      ['a string as itself', 'plain text', 'plain text'],
      ['a number', 42, '42'],
      ['undefined', undefined, 'undefined'],
    ];
    for (const [what, value, expected] of cases) {
      it(`describes ${what}`, () => assert.equal(describeCause(value), expected));
    }
  });
});

function fsError(): unknown {
  try {
    fs.readFileSync('/nonexistent/palisade-errors-test');
  } catch (err) {
    return err;
  }
  throw new Error('reading a missing file did not fail');
}
