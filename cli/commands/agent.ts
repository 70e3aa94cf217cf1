/** `palisade agent` (run the node daemon) and `palisade agent uninstall`. */
import type { Command } from 'commander';
import { startAgent, uninstallNode } from '../../agent/agent';
import type { CliDeps } from '../program';
import { collectCidr, collectPort, parseIPv4 } from '../options';

interface AgentFlags {
  node: string;
  proxyAddress: string;
  workloads?: string;
  cgroup?: string;
  bpffs: string;
  runDir: string;
  excludeCidr: string[];
  excludePort: number[];
  logLevel?: string;
}

export function registerAgentCommands(program: Command, deps: CliDeps): void {
  const agent = program.command('agent').description('the node agent: eBPF redirect + node proxy');
  agent
    .command('run', { isDefault: true })
    .description('run the agent (the default: `palisade agent --node N ...`)')
    .requiredOption('--node <name>', 'this node\'s name (pins live under <bpffs>/palisade/<name>/)', process.env.PALISADE_NODE)
    .requiredOption('--proxy-address <ip>', 'node proxy address pods are redirected to', parseIPv4)
    .option('--workloads <file>', 'YAML file of this node\'s workloads')
    .option('--cgroup <path>', 'cgroup v2 directory to attach to (default: the cgroup v2 root)')
    .option('--bpffs <path>', 'bpffs mount point', '/sys/fs/bpf')
    .option('--run-dir <path>', 'directory for the node lock', '/run/palisade')
    .option('--exclude-cidr <cidr>', 'never redirect this destination CIDR (repeatable)', collectCidr, [])
    .option('--exclude-port <port>', 'never redirect this destination port (repeatable)', collectPort, [])
    .option('--log-level <level>', 'trace|debug|info|warn|error', undefined)
    .action(async (flags: AgentFlags) => {
      const log = deps.logger(flags.logLevel);
      const running = await startAgent({
        node: flags.node,
        proxyIp: flags.proxyAddress,
        workloadsFile: flags.workloads,
        cgroup: flags.cgroup,
        bpffs: flags.bpffs,
        runDir: flags.runDir,
        excludeCidrs: flags.excludeCidr,
        excludePorts: flags.excludePort,
        log,
      });
      const signal = await deps.waitForStop();
      log.info({ signal }, 'stopping');
      await running.close();
    });

  agent
    .command('uninstall')
    .description('detach every program and remove every pin of a node (the agent must be stopped)')
    .requiredOption('--node <name>', 'node name', process.env.PALISADE_NODE)
    .option('--bpffs <path>', 'bpffs mount point', '/sys/fs/bpf')
    .option('--run-dir <path>', 'directory for the node lock', '/run/palisade')
    .option('-o, --output <format>', 'text|json', 'text')
    .action((flags: { node: string; bpffs: string; runDir: string; output: string }) => {
      const removed = uninstallNode({ node: flags.node, bpffs: flags.bpffs, runDir: flags.runDir, log: deps.logger() });
      if (flags.output === 'json') deps.stdout(`${JSON.stringify({ node: flags.node, removed })}\n`);
      else deps.stdout(removed.length ? `removed ${removed.length} pins of node ${flags.node}\n` : `node ${flags.node} had nothing installed\n`);
    });
}
