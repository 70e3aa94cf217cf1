/**
 * The agent's side of the per-pod filters (bpf/pod.bpf.c): registers the agent's cgroup (the only
 * sockets strict pods take new connections from) and withdraws it when the agent stops.
 */
import type { Logger } from '../../common/log';
import type { Datapath } from '../datapath/datapath';
import { ownCgroup } from '../datapath/mounts';
import { registerAgentCgroup, unregisterAgentCgroup } from '../datapath/pod-wire';

export interface WireEnforcementInputs {
  datapath: Datapath;
  log: Logger;
}

export class WireEnforcement {
  private readonly cgroup: { path: string; id: bigint };

  constructor(private readonly inputs: WireEnforcementInputs) {
    this.cgroup = ownCgroup();
  }

  start(): void {
    registerAgentCgroup(this.inputs.datapath, this.cgroup.id, process.pid);
    this.inputs.log.info({ cgroup: this.cgroup.path, cgroupId: this.cgroup.id.toString() }, 'strict pods accept connections from this cgroup');
  }

  close(): void {
    try {
      unregisterAgentCgroup(this.inputs.datapath, this.cgroup.id, process.pid);
    } catch {
      // The data path is gone already (uninstalled): nothing to withdraw.
    }
  }
}
