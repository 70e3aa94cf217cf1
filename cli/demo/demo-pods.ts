/**
 * `palisade demo pod add|remove`: a pod comes or goes while the demo runs, through the CNI chain
 * as on a Kubernetes node (./demo-kube.ts): ADD returns once the agent has enrolled it, DEL once
 * it has unenrolled it. The input is checked first (./pod-request.ts: one line, nothing changed);
 * the state file is read and written under the demo's lock (./state-lock.ts), so two commands at
 * once keep both pods, and a pod does not come while the demo goes down.
 */
import { invalidArgument, PalisadeError } from '../../common/errors';
import { Topology } from '../../test/harness';
import { alive } from './daemons';
import { openDemoKubelets, type DemoPodRecord } from './demo-kube';
import { demoProcesses, readState, startWebApp, writeState, type DemoState } from './demo';
import { demoPodLabels, podAddRequest, type PodAddFlags } from './pod-request';
import { withStateLock } from './state-lock';

function notUp(): never {
  throw new PalisadeError('PALISADE_ERR_NOT_FOUND', 'the demo is not up (run `palisade demo up` or `make demo`)');
}

/** The demo's state, refusing a demo that is not up or not whole (one line). */
function runningState(dir: string): DemoState & { kube: NonNullable<DemoState['kube']> } {
  const state = readState(dir);
  if (!state) notUp();
  if (!state.kube) throw new PalisadeError('PALISADE_ERR_CONFLICT', 'this demo was made before pods came through the CNI chain: palisade demo up --recreate');
  // The mesh's processes; a pod's app or Prometheus stopped does not keep pods from coming and going.
  const apps = new Set([...state.apps.map((a) => a.pid), ...(state.prometheus ? [state.prometheus.pid, ...state.prometheus.relays.map((r) => r.pid)] : [])]);
  const stopped = demoProcesses(state).filter((p) => !p.running && !apps.has(p.pid));
  if (stopped.length > 0) {
    throw new PalisadeError('PALISADE_ERR_CONFLICT', `the demo is not whole (${stopped.map((p) => `${p.name} stopped`).join(', ')}): palisade demo up --recreate`);
  }
  return state as DemoState & { kube: NonNullable<DemoState['kube']> };
}

/** Add a pod through the CNI chain; resolves once its node's agent has enrolled it. */
export async function demoPodAdd(dir: string, flags: PodAddFlags): Promise<DemoPodRecord & { ip: string }> {
  return withStateLock(dir, async () => {
    const state = runningState(dir);
    const names = [...state.topology.pods.map((p) => p.name), ...state.topology.externalHosts.map((h) => h.name)];
    const spec = podAddRequest(flags, { nodes: state.topology.nodes.map((n) => n.name), names }, demoPodLabels);
    const topo = Topology.attach(state.topology);
    const kubelets = await openDemoKubelets(topo, dir, state.kube.hostKubeconfig);
    const record = await kubelets.add(spec);
    state.pods = [...(state.pods ?? []), record];
    state.topology = topo.describe();
    writeState(dir, state);
    if (spec.app === 'web') await startWebApp(state, spec.name, dir, () => writeState(dir, state));
    return { ...record, ip: topo.pods.find((p) => p.name === spec.name)!.ip };
  }, notUp);
}

/** Remove a pod: its app stopped, DEL through the chain (the agent unenrolls it), sandbox and Pod object gone. */
export async function demoPodRemove(dir: string, name: string): Promise<DemoPodRecord> {
  return withStateLock(dir, async () => {
    const state = runningState(dir);
    const record = state.pods?.find((p) => p.name === name);
    if (!record) throw invalidArgument(`no demo pod ${JSON.stringify(name)} (pods: ${(state.pods ?? []).map((p) => p.name).join(', ')})`);
    const topo = Topology.attach(state.topology);
    const kubelets = await openDemoKubelets(topo, dir, state.kube.hostKubeconfig);
    for (const app of state.apps.filter((a) => a.pod === name && alive(a.pid))) process.kill(app.pid, 'SIGTERM');
    await kubelets.remove(record);
    state.apps = state.apps.filter((a) => a.pod !== name);
    state.pods = state.pods!.filter((p) => p.name !== name);
    state.topology = topo.describe();
    writeState(dir, state);
    return record;
  }, notUp);
}
