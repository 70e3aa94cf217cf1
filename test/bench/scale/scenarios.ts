/**
 * The scenarios, each on a running SimMesh: steady state, a node joining, 10 % of nodes
 * restarting at once, a pod churn wave, policy changes, the collector restarting. Each returns
 * its ScenarioResult (measure.ts); a change "arrives" at an agent with the first registry or
 * policies frame whose version includes it.
 */
import { CONTROL_API, type PolicyChangeResponse } from '../../../common/control-api';
import { everyAgentHas, Measurement, propagation, type Change, type ScenarioResult } from './measure';
import type { ScenarioName } from './options';
import type { AgentProxy } from './agent-proxy';
import type { Replaced } from './worker-messages';
import type { SimMesh } from './sim-mesh';
import { now, sleep, within } from './timing';
import { spread } from './stats';
import { prng } from '../../fixtures/prng';

/** How long a scenario waits for its change to reach every agent: 2 minutes, and past 24,000 workloads 5 ms more per workload (a collector restart moves every agent a whole registry). */
const waitMs = (mesh: SimMesh): number => Math.max(120_000, mesh.opts.nodes * mesh.opts.podsPerNode * 5);

export type Scenario = (mesh: SimMesh) => Promise<ScenarioResult>;

export const RUN: Record<ScenarioName, Scenario> = {
  steady,
  'node-join': nodeJoin,
  'restart-10pct': restartTenth,
  'pod-churn': podChurn,
  'policy-change': policyChange,
  'collector-restart': collectorRestart,
};

/** Nothing changes: flows at the set rate; the latency is a flow batch's acknowledgement. */
async function steady(mesh: SimMesh): Promise<ScenarioResult> {
  await mesh.processes.all({ op: 'take-acks' }); // from now on
  const m = await Measurement.begin(mesh, 'steady');
  await sleep(mesh.opts.durationS * 1000);
  const samples = (await mesh.processes.all<number[]>({ op: 'take-acks' })).flat();
  return m.end('flow batch sent → flows-ack', 0, { samples, missed: 0, everyAgent: [] }, {});
}

/** A new node joins with a fresh token: its full state, and its pods reaching every other agent. */
async function nodeJoin(mesh: SimMesh): Promise<ScenarioResult> {
  const i = mesh.agents.length;
  const [token] = mesh.createTokens(i, i + 1);
  const others = [...mesh.agents];
  const agent = await mesh.addAgent(i);
  await mesh.startFlows(); // the flows' shares again, with the new agent
  const m = await Measurement.begin(mesh, 'node-join');
  const t0 = m.started;
  await agent.join(token!);
  const joinedMs = now() - t0;
  const own = agent.watchFor(mesh.pods[i]!.ipAt(0));
  await agent.connect();
  const registryMs = now() - t0;
  await agent.requestCertificates();
  const certsMs = now() - t0;
  const landed = await within(own, waitMs(mesh));
  const policiesMs = agent.policies[0] ? agent.policies[0].t - t0 : null;
  const changes: Change[] = landed ? [{ t: t0, version: landed.version, owner: agent }] : [];
  if (landed) await everyAgentHas(others, 'registry', landed.version, t0, waitMs(mesh));
  const fullStateMs = Math.max(registryMs, certsMs, policiesMs ?? Infinity);
  return m.end('token join started → the new node\'s pods in every other agent\'s registry', 1, propagation(others, changes, 'registry'), {
    fullStateMs: Math.round(fullStateMs),
    joinedMs: Math.round(joinedMs),
    firstRegistryMs: Math.round(registryMs),
    policiesMs: policiesMs === null ? null : Math.round(policiesMs),
    certificatesMs: Math.round(certsMs),
    ownPodsLanded: landed !== undefined,
  });
}

/** Every tenth agent restarts at once: session closed, a new one, its certificates again. */
async function restartTenth(mesh: SimMesh): Promise<ScenarioResult> {
  const chosen = mesh.agents.map((a, i) => ({ a, i })).filter(({ i }) => i % 10 === 0);
  const m = await Measurement.begin(mesh, 'restart-10pct');
  const t0 = m.started;
  const ready: number[] = [];
  const changes: Change[] = [];
  await Promise.all(
    chosen.map(async ({ a }) => {
      await a.disconnect();
      const since = now();
      await a.connect();
      const back = a.registry.find((r) => r.t >= since);
      if (back) changes.push({ t: t0, version: back.version, owner: a });
      await a.requestCertificates();
      ready.push(now() - t0);
    }),
  );
  const newest = Math.max(...changes.map((c) => c.version));
  await everyAgentHas(mesh.agents, 'registry', newest, t0, waitMs(mesh));
  return m.end('restart began → the node online again in every other agent\'s registry', chosen.length, propagation(mesh.agents, changes, 'registry'), {
    restarted: chosen.length,
    restartedReady: spread(ready),
  });
}

/**
 * Which replaced pods are timed. The agent that replaced a pod learns which frame carried it by
 * searching frames for its address, which for a deflated frame means inflating it whole; with a
 * watch on every pod, every simulated agent would inflate every frame (at 1,000 pods/s over 1,000
 * agents, more than the simulator's cores), so past WATCH_ALL_PER_SECOND pods/s every 10th pod is
 * timed: still 1,000 changes in a 10 s wave at that rate, each timed at every agent. Every pod is
 * replaced and pushed all the same.
 */
const WATCH_EVERY = 10;
const WATCH_ALL_PER_SECOND = 100;

/** For durationS seconds, churnFraction of all pods replaced per second (new name, new address); past WATCH_ALL_PER_SECOND, every WATCH_EVERY-th one timed. */
async function podChurn(mesh: SimMesh): Promise<ScenarioResult> {
  const m = await Measurement.begin(mesh, 'pod-churn');
  const pending: Array<{ owner: AgentProxy; landed: Promise<Replaced> }> = [];
  const random = prng(20);
  const perSecond = mesh.pods.reduce((s, p) => s + p.count, 0) * mesh.opts.churnFraction;
  const watchEvery = perSecond > WATCH_ALL_PER_SECOND ? WATCH_EVERY : 1;
  let replaced = 0;
  let carry = 0;
  let last = now();
  const tick = setInterval(() => {
    // by the clock, not per tick: a late tick (a busy coordinator) still offers the whole rate
    const at = now();
    carry += (perSecond * (at - last)) / 1000;
    last = at;
    const count = Math.floor(carry);
    carry -= count;
    const byNode = new Map<number, Set<number>>();
    for (let k = 0; k < count; k++) {
      const node = Math.floor(random() * mesh.agents.length);
      const set = byNode.get(node) ?? new Set<number>();
      set.add(Math.floor(random() * mesh.pods[node]!.count));
      byNode.set(node, set);
    }
    for (const [node, positions] of byNode) {
      const agent = mesh.agents[node]!;
      // the agent's process replaces the same pods in its copy of the node's pods and registers them
      for (const p of positions) mesh.pods[node]!.replace(p);
      const watched = [...positions].map(() => replaced++ % watchEvery === 0);
      for (const landed of agent.replacePods([...positions], watched)) pending.push({ owner: agent, landed });
    }
  }, 100);
  await sleep(mesh.opts.durationS * 1000);
  clearInterval(tick);
  const waveS = (now() - m.started) / 1000;
  const landed = await Promise.all(pending.map((p) => within(p.landed, waitMs(mesh))));
  const changes: Change[] = [];
  pending.forEach((p, k) => {
    const arrival = landed[k];
    // the change is made when its agent sent the register (its process's clock: CLOCK_MONOTONIC, as every arrival)
    if (arrival) changes.push({ t: arrival.sent, version: arrival.version, owner: p.owner });
  });
  const newest = Math.max(0, ...changes.map((c) => c.version));
  await everyAgentHas(mesh.agents, 'registry', newest, m.started, waitMs(mesh));
  const latency = propagation(mesh.agents, changes, 'registry');
  latency.missed += (pending.length - changes.length) * (mesh.agents.length - 1);
  const timed = watchEvery === 1 ? '' : ` (timed for every ${watchEvery}th pod replaced)`;
  return m.end(`pod replaced (register sent) → the new pod in every other agent's registry${timed}`, replaced, latency, {
    podsReplaced: replaced,
    podsTimed: pending.length,
    perSecond: Math.round(perSecond),
    offeredPerSecond: Math.round(replaced / waveS),
    neverLanded: pending.length - changes.length,
  });
}

/** `policyChanges` new AuthorizationPolicies through the API, one after the other has spread. */
async function policyChange(mesh: SimMesh): Promise<ScenarioResult> {
  const api = mesh.api();
  const m = await Measurement.begin(mesh, 'policy-change');
  const changes: Change[] = [];
  const applyMs: number[] = [];
  for (let k = 0; k < mesh.opts.policyChanges; k++) {
    const t = now();
    const answer = (await api.postJson(CONTROL_API.policyApply, { files: [{ source: `scale-sim-${k}.yaml`, text: policyYaml(k) }] })) as PolicyChangeResponse;
    applyMs.push(Math.round(now() - t));
    changes.push({ t, version: answer.version });
    await everyAgentHas(mesh.agents, 'policies', answer.version, t, waitMs(mesh));
    await sleep(200);
  }
  return m.end('policy applied (API call began) → the new version in every agent\'s policies', changes.length, propagation(mesh.agents, changes, 'policies'), {
    versions: changes.map((c) => c.version),
    // how long the API took to answer (stored, audited, pushed): the rest of the latency is the push
    applyMs,
  });
}

/** The collector stops (SIGTERM) and starts again on its data and port; agents reconnect by themselves. */
async function collectorRestart(mesh: SimMesh): Promise<ScenarioResult> {
  const m = await Measurement.begin(mesh, 'collector-restart');
  const t0 = m.started;
  await mesh.collector.stop();
  const stoppedMs = now() - t0;
  // an agent is back at its first registry frame after hello (it says where its registry stands: deltas or a snapshot)
  const own = mesh.agents.map((a) => a.whenBack());
  await mesh.collector.start();
  const listening = now();
  const landed = await Promise.all(own.map((p) => within(p, waitMs(mesh))));
  const newest = Math.max(0, ...landed.map((a) => a?.version ?? 0));
  const complete = await everyAgentHas(mesh.agents, 'registry', newest, listening, waitMs(mesh));
  const change: Change = { t: t0, version: newest };
  // every agent's pods again, in every agent: one change, the whole registry rebuilt
  const latency = propagation(mesh.agents, landed.every((a) => a !== undefined) ? [change] : [], 'registry');
  if (!landed.every((a) => a !== undefined)) latency.missed = mesh.agents.length;
  return m.end('collector stop began → every agent back and at the newest version', 1, latency, {
    stoppedMs: Math.round(stoppedMs),
    downMs: Math.round(listening - t0),
    complete,
    nodesReregistered: landed.filter((a) => a !== undefined).length,
  });
}

function policyYaml(k: number): string {
  return [
    'apiVersion: security.istio.io/v1',
    'kind: AuthorizationPolicy',
    'metadata:',
    `  name: sim-allow-${k}`,
    '  namespace: ns-0',
    'spec:',
    '  selector:',
    '    matchLabels:',
    '      app: app-0',
    '  action: ALLOW',
    '  rules:',
    '    - from:',
    '        - source:',
    `            principals: ["cluster.local/ns/ns-${k % 2}/sa/app-${k % 2}"]`,
    '      to:',
    '        - operation:',
    '            methods: ["GET"]',
    `            paths: ["/v${k}/*"]`,
    '',
  ].join('\n');
}
