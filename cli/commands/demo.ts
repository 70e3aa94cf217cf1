/** `palisade demo up | down | status | exec POD -- CMD...` */
import type { Command } from 'commander';
import { PalisadeError } from '../../common/errors';
import { DEFAULT_DEMO_DIR, demoDown, demoExec, demoStatus, demoUp, readState } from '../demo/demo';
import { DEFAULT_PROMETHEUS_LISTEN, parsePrometheusListen } from '../demo/prometheus';
import type { CliDeps } from '../deps';
import { formatTable } from '../table';

function requireState(dir: string): NonNullable<ReturnType<typeof readState>> {
  const state = readState(dir);
  if (!state) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', 'the demo is not up (run `palisade demo up` or `make demo`)');
  return state;
}

export function registerDemoCommands(program: Command, deps: CliDeps): void {
  const demo = program.command('demo').description('a local multi-node mesh in network namespaces').enablePositionalOptions();
  const dirOpt = ['--state-dir <dir>', 'where the demo keeps its state and logs', DEFAULT_DEMO_DIR] as const;

  demo
    .command('up')
    .description('create nodes, pods and agents; prints what to try next (a running demo is kept, with its flows, policies and audit log)')
    .option(...dirOpt)
    .option('--recreate', 'take a running demo down and start over')
    .option('--with-prometheus', `also run Prometheus, scraping both agents every second (for Grafana: ${DEFAULT_PROMETHEUS_LISTEN})`)
    .option('--prometheus-listen <ip:port>', 'where Prometheus answers on this host', parsePrometheusListen, DEFAULT_PROMETHEUS_LISTEN)
    .action(async (flags: { stateDir: string; recreate?: boolean; withPrometheus?: boolean; prometheusListen: string }) => {
      const { state, created } = await demoUp(flags.stateDir, (l) => deps.stdout(`${l}\n`), {
        recreate: flags.recreate === true,
        ...(flags.withPrometheus ? { prometheusListen: flags.prometheusListen } : {}),
      });
      const st = demoStatus(state);
      if (created) deps.stdout(`demo is up: ${st.agents.length} nodes, ${st.pods.length} pods\n\n`);
      else {
        deps.stdout(`a demo is already up (since ${state.createdAt}): kept as it is, with its flows, policies and audit log (--recreate starts over)\n`);
        if (flags.withPrometheus && !state.prometheus) deps.stdout('it runs no Prometheus: palisade demo up --recreate --with-prometheus\n');
        deps.stdout('\n');
      }
      deps.stdout(formatTable(['POD', 'NODE', 'IP', 'IDENTITY', 'STRICT'], st.pods.map((p) => [p.name, p.node, p.ip, p.identity, String(p.strict)])));
      const web2 = st.pods.find((p) => p.name === 'web-2');
      const web1 = st.pods.find((p) => p.name === 'web-1');
      deps.stdout(
        [
          '',
          'Try:',
          `  palisade demo exec client -- curl -s http://${web2?.ip}:8080/       # node-1 -> node-2 over mTLS (HBONE), as spiffe://.../sa/client`,
          `  palisade demo exec client -- curl -s http://${web1?.ip}:8080/echo   # same node: the local path, from the proxy address`,
          `  palisade demo exec client -- curl -s --resolve allowed.example.test:443:${st.ext?.ip} --cacert ${st.ext?.caFile} https://allowed.example.test/`,
          `                                                                    # egress to the ext host (outside the mesh)`,
          `  cp deploy/examples/policies/*.yaml ${st.policyDir}/                # policies: the collector pushes them to both agents`,
          `  palisade demo exec client -- curl -s http://${web2?.ip}:8080/public  # allowed; /admin now answers 403, other callers too`,
          `  palisade observe                                                  # the flows, from the collector (-f to follow)`,
          `  palisade dashboard                                                # the service map in your browser (--no-open prints its one-time link)`,
          ...(state.prometheus ? [`  curl -s 'http://${state.prometheus.listen}/api/v1/query?query=istio_requests_total'   # Prometheus, scraping both agents (Grafana: add it as a data source)`] : []),
          `  palisade demo status -o json`,
          `  tail -f ${flags.stateDir}/logs/agent-node-1.log                      # every flow: verdict, reason, policy, mTLS, bytes`,
          `  tail -f ${flags.stateDir}/logs/web-2.log                             # web-2 sees callers arrive from node-2's proxy only`,
          `  palisade demo down`,
          '',
        ].join('\n'),
      );
    });

  demo
    .command('down')
    .description('stop agents and apps, detach programs, remove namespaces and cgroups')
    .option(...dirOpt)
    .action(async (flags: { stateDir: string }) => {
      const was = await demoDown(flags.stateDir);
      deps.stdout(was ? 'demo is down\n' : 'the demo was not up\n');
    });

  demo
    .command('status')
    .description('pods with node, IP and identity; agents')
    .option(...dirOpt)
    .option('-o, --output <format>', 'table|json', 'table')
    .action((flags: { stateDir: string; output: string }) => {
      const st = demoStatus(requireState(flags.stateDir));
      if (flags.output === 'json') {
        deps.stdout(`${JSON.stringify(st, null, 2)}\n`);
        return;
      }
      deps.stdout(formatTable(['POD', 'NODE', 'IP', 'IDENTITY', 'STRICT'], st.pods.map((p) => [p.name, p.node, p.ip, p.identity, String(p.strict)])));
      deps.stdout('\n');
      const rows = st.agents.map((a) => [`agent ${a.node}`, String(a.pid), String(a.running)]);
      if (st.collector) rows.unshift(['collector', String(st.collector.pid), String(st.collector.running)]);
      if (st.prometheus) rows.push([`prometheus ${st.prometheus.listen}`, String(st.prometheus.pid), String(st.prometheus.running)]);
      deps.stdout(formatTable(['PROCESS', 'PID', 'RUNNING'], rows));
    });

  demo
    .command('exec')
    .description('run a command inside a demo pod: palisade demo exec POD -- CMD [ARGS...]')
    .argument('<pod>', 'demo pod name')
    .argument('<command...>', 'command and arguments (after --)')
    .option(...dirOpt)
    .passThroughOptions()
    .action(async (pod: string, command: string[], flags: { stateDir: string }) => {
      const argv = command[0] === '--' ? command.slice(1) : command;
      const code = await demoExec(requireState(flags.stateDir), pod, argv);
      if (code !== 0) throw Object.assign(new Error(`exit ${code}`), { exitCodeOnly: code });
    });
}
