/** The end of a privileged suite: agents killed, data paths uninstalled, namespaces and dirs removed. */
import * as fs from 'node:fs';
import { Datapath } from '../../agent/datapath/datapath';
import type { AgentProcess } from './agent';
import type { TestCollector } from './mesh';
import type { Topology } from './topology';

export async function tearDown(o: { agents: Array<AgentProcess | undefined>; topo: Topology | undefined; collector?: TestCollector; dirs?: Array<string | undefined> }): Promise<void> {
  for (const a of o.agents) await a?.stop('SIGKILL');
  for (const n of o.topo?.nodes ?? []) Datapath.uninstall(n.name);
  await o.topo?.destroy();
  await o.collector?.cleanup();
  for (const d of o.dirs ?? []) if (d) fs.rmSync(d, { recursive: true, force: true });
}
