/**
 * A fake of the agent's side of the CNI socket (`CniEnroller`) for tests of the plugin and the
 * endpoint: it records every call, keeps the set of "enrolled" sandboxes, and can be told to be
 * slow or to refuse. It touches no namespace and no map.
 */
import type { CniEnroller, CniSandbox } from '../../agent/cni/protocol';

export type EnrollerOp = 'enroll' | 'unenroll' | 'check';

export interface EnrollerCall {
  op: EnrollerOp;
  sandbox: CniSandbox;
  /** When the call arrived and when it settled (Date.now()). */
  started: number;
  settled: number | undefined;
}

export class FakeEnroller implements CniEnroller {
  readonly calls: EnrollerCall[] = [];
  /** Enrolled sandboxes by container id. */
  readonly enrolled = new Map<string, CniSandbox>();
  /** How long each call takes. */
  delayMs = 0;
  /** When set, calls of these kinds reject with it. */
  failure: { ops: EnrollerOp[]; error: Error } | undefined;

  enroll(sandbox: CniSandbox): Promise<void> {
    return this.call('enroll', sandbox, () => void this.enrolled.set(sandbox.containerId, sandbox));
  }

  unenroll(sandbox: CniSandbox): Promise<void> {
    return this.call('unenroll', sandbox, () => void this.enrolled.delete(sandbox.containerId));
  }

  check(sandbox: CniSandbox): Promise<void> {
    return this.call('check', sandbox, () => {
      if (!this.enrolled.has(sandbox.containerId)) throw new Error(`sandbox ${sandbox.containerId} is not enrolled`);
    });
  }

  /** The calls of one kind, in arrival order. */
  of(op: EnrollerOp): CniSandbox[] {
    return this.calls.filter((c) => c.op === op).map((c) => c.sandbox);
  }

  private async call(op: EnrollerOp, sandbox: CniSandbox, effect: () => void): Promise<void> {
    const record: EnrollerCall = { op, sandbox, started: Date.now(), settled: undefined };
    this.calls.push(record);
    try {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.failure?.ops.includes(op)) throw this.failure.error;
      effect();
    } finally {
      record.settled = Date.now();
    }
  }
}
