/** `palisade cni install|uninstall`: palisade-cni into (and out of) a node's CNI chain (agent/cni/install.ts). */
import { InvalidArgumentError, type Command } from 'commander';
import * as path from 'node:path';
import { installCni, uninstallCni } from '../../agent/cni/install';
import type { CliDeps } from '../deps';

/** dist/cni/palisade-cni, next to this command's dist/cli/. */
const BUNDLED_PLUGIN = path.resolve(__dirname, '../../cni/palisade-cni');
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function collectNamespace(value: string, previous: string[]): string[] {
  if (!NAMESPACE.test(value)) throw new InvalidArgumentError(`not a namespace name: ${value}`);
  return [...previous, value];
}

function parseTimeoutMs(value: string): number {
  const n = Number(value);
  if (!/^\d{1,5}$/.test(value) || n < 1 || n > 60_000) throw new InvalidArgumentError(`expected milliseconds from 1 to 60000, got ${value}`);
  return n;
}

interface InstallFlags {
  cniBinDir: string;
  cniConfDir: string;
  plugin: string;
  agentSocket: string;
  timeoutMs: number;
  excludeNamespace: string[];
}

export function registerCniCommands(program: Command, deps: CliDeps): void {
  const cni = program.command('cni').description('palisade-cni, the chained CNI plugin that enrolls pods as they start');
  cni
    .command('install')
    .description('copy palisade-cni into the CNI bin directory and put it last in the network configuration the runtime uses (idempotent)')
    .option('--cni-bin-dir <dir>', 'the runtime\'s CNI plugin directory', '/opt/cni/bin')
    .option('--cni-conf-dir <dir>', 'the runtime\'s CNI configuration directory', '/etc/cni/net.d')
    .option('--plugin <file>', 'the plugin binary to install', BUNDLED_PLUGIN)
    .option('--agent-socket <path>', 'the agent\'s CNI socket, as the host sees it', '/run/palisade/cni.sock')
    .option('--timeout-ms <ms>', 'how long the plugin waits for the agent before failing the pod\'s start', parseTimeoutMs, 3000)
    .option('--exclude-namespace <ns>', 'pods of this namespace are never asked about (repeatable)', collectNamespace, [])
    .action((flags: InstallFlags) => {
      const r = installCni({
        binDir: flags.cniBinDir,
        confDir: flags.cniConfDir,
        plugin: flags.plugin,
        entry: { agentSocket: flags.agentSocket, timeoutMs: flags.timeoutMs, excludeNamespaces: flags.excludeNamespace },
      });
      const what = r.configChanged ? `palisade-cni is now last in ${r.config}` : `${r.config} already lists palisade-cni as configured`;
      deps.stdout(`${what}${r.replaced ? ` (it replaces ${r.replaced})` : ''}; plugin in ${path.join(flags.cniBinDir, 'palisade-cni')}\n`);
    });
  cni
    .command('uninstall')
    .description('take palisade-cni out of every network configuration, then remove its binary')
    .option('--cni-bin-dir <dir>', 'the runtime\'s CNI plugin directory', '/opt/cni/bin')
    .option('--cni-conf-dir <dir>', 'the runtime\'s CNI configuration directory', '/etc/cni/net.d')
    .action((flags: { cniBinDir: string; cniConfDir: string }) => {
      const changed = uninstallCni({ binDir: flags.cniBinDir, confDir: flags.cniConfDir });
      deps.stdout(changed.length > 0 ? `palisade-cni removed from ${changed.join(', ')}\n` : `no network configuration in ${flags.cniConfDir} lists palisade-cni\n`);
    });
}
