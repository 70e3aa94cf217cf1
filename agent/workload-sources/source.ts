/**
 * Where the node's workloads come from. A source knows which workloads should run in the mesh on
 * this node (the workloads file, the Kubernetes API joined with CNI events) and tells the node's
 * enrollment (./node-enrollment.ts) as that changes. Several sources may run at once: each puts
 * and removes only keys of its own (prefixed with its name).
 */
import type { NodeEnrollment } from './node-enrollment';

export interface WorkloadSource {
  /** Short name, the prefix of its enrollment keys: `file`, `kubernetes`. */
  readonly name: string;
  /** Enroll what the source knows now and start following changes. Throws for a start that must not go on. */
  start(enrollment: NodeEnrollment): Promise<void>;
  /**
   * Resolves once the source has reconciled the node against its truth (the file read, the API
   * listed); never rejects (a source that cannot reach its truth keeps trying).
   */
  synced(): Promise<void>;
  /** True once `synced()` has resolved. */
  readonly isSynced: boolean;
  close(): Promise<void>;
}
