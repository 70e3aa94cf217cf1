/** `palisade demo up | down | status | exec POD -- CMD... | pod add|remove | traffic` */
import type { Command } from 'commander';
import { spiffeId } from '../../common/identity';
import { PalisadeError } from '../../common/errors';
import type { DemoState } from '../demo/demo';
import { DEFAULT_PROMETHEUS_LISTEN, parsePrometheusListen } from '../demo/prometheus';
import { DEFAULT_DEMO_DIR, parseRate, TRUST_DOMAIN, WEB_PORT } from '../demo/settings';
import type { CliDeps } from '../deps';
import { collectValue } from '../options';
import { parsePositiveDuration } from '../../common/duration';
import { demoServices } from '../demo/services';
import { formatTable } from '../table';

// The demo's code (and the test harness it runs on) is loaded when a demo command runs, not when
// `palisade` declares its commands: `palisade agent` does not load it (cli/demo/settings.ts).
const demoModule = () => import('../demo/demo');

async function requireState(dir: string): Promise<DemoState> {
  const state = (await demoModule()).readState(dir);
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
      const { demoStatus, demoUp } = await demoModule();
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
          `  palisade demo traffic --to web                                   # a steady load to the Service web (v1 and v2), a line a second; Ctrl-C: the tally`,
          `  cp deploy/examples/policies/*.yaml ${st.policyDir}/                # policies: the collector pushes them to both agents`,
          `  palisade demo exec client -- curl -s http://${web2?.ip}:8080/public  # allowed; /admin now answers 403, other callers too`,
          `  palisade demo pod add web-3 --node node-2 --label app=web --service-account web --web`,
          `                                                                    # a pod through the CNI chain, enrolled when it returns`,
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
      const was = await (await demoModule()).demoDown(flags.stateDir);
      deps.stdout(was ? 'demo is down\n' : 'the demo was not up\n');
    });

  demo
    .command('status')
    .description('pods with node, IP and identity; agents')
    .option(...dirOpt)
    .option('-o, --output <format>', 'table|json', 'table')
    .action(async (flags: { stateDir: string; output: string }) => {
      const st = (await demoModule()).demoStatus(await requireState(flags.stateDir));
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
      if (st.services.length > 0) {
        deps.stdout('\n');
        deps.stdout(
          formatTable(
            ['SERVICE', 'IPS', 'PORTS', 'ENDPOINTS'],
            st.services.map((s) => [`${s.namespace}/${s.name}`, s.ips.join(','), s.ports.map((p) => `${p.port}->${p.targetPort}`).join(','), s.endpoints.map((e) => `${e.pod}(${e.ip})`).join(' ') || '-']),
          ),
        );
      }
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
      const code = await (await demoModule()).demoExec(await requireState(flags.stateDir), pod, argv);
      if (code !== 0) throw Object.assign(new Error(`exit ${code}`), { exitCodeOnly: code });
    });

  demo
    .command('traffic')
    .description('a steady load from a pod to a Service, a line a second naming the backends; Ctrl-C stops it and prints the per-backend tally')
    .option('--from <pod>', 'the pod that sends it', 'client')
    .option('--to <service|url>', 'a demo Service (web, web-v1, web-v2) or an http:// URL', 'web')
    .option('--path <path>', 'the path requested of a Service', '/')
    .option('--rate <n>', 'requests per second, each on a connection of its own', parseRate, 10)
    .option('--duration <d>', 'how long (30s, 5m); default until Ctrl-C')
    .option(...dirOpt)
    .action(async (flags: { stateDir: string; from: string; to: string; path: string; rate: number; duration?: string }) => {
      const state = await requireState(flags.stateDir);
      const { runTraffic, trafficUrl } = await import('../demo/traffic');
      const url = trafficUrl(flags.to, flags.path, demoServices(WEB_PORT));
      const durationMs = flags.duration === undefined ? 0 : parsePositiveDuration(flags.duration, '--duration');
      const pod = state.topology.pods.find((p) => p.name === flags.from);
      if (!pod) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `--from ${JSON.stringify(flags.from)}: no such demo pod (pods: ${state.topology.pods.map((p) => p.name).join(', ')})`);
      deps.stdout(`${flags.from} -> ${url}, ${flags.rate}/s${durationMs ? ` for ${flags.duration}` : ' until Ctrl-C'} (answers per second, by the pod that answered)\n`);
      const { tally, seconds } = await runTraffic(pod, url, { rate: flags.rate, durationMs }, (l) => deps.stdout(`${l}\n`), deps.waitForStop());
      deps.stdout(`\n${tally.answers} answers in ${seconds.toFixed(1)} s${tally.skipped ? ` (${tally.skipped} ticks skipped: 64 requests already open)` : ''}\n${tally.summary()}\n`);
    });

  const pod = demo.command('pod').description('add or remove a pod while the demo runs, through the CNI chain as on a Kubernetes node');
  pod
    .command('add')
    .description('create a pod (Pod object, sandbox, CNI ADD): it is enrolled in the mesh when this returns')
    .argument('<name>', 'pod name (a DNS-1123 label)')
    .option('--node <node>', 'the node it runs on', 'node-1')
    .option('--label <key=value>', 'a label (repeatable; app defaults to the pod name)', collectValue)
    .option('--service-account <name>', 'its service account (its SPIFFE identity)', 'default')
    .option('--strict', 'only the node proxy may open connections to it')
    .option('--web', 'run the demo\'s web app in it (HTTP on 8080, like web-1 and web-2)')
    .option(...dirOpt)
    .action(async (name: string, flags: { stateDir: string; node: string; label?: string[]; serviceAccount: string; strict?: boolean; web?: boolean }) => {
      const p = await (await import('../demo/demo-pods')).demoPodAdd(flags.stateDir, { name, node: flags.node, labels: flags.label ?? [], serviceAccount: flags.serviceAccount, strict: flags.strict === true, web: flags.web === true });
      deps.stdout(
        `pod ${p.name} on ${p.node}: ${p.ip}, ${spiffeId(TRUST_DOMAIN, p.namespace, p.serviceAccount)}, enrolled` +
          ` (CNI ADD ${p.addMs} ms, of which palisade-cni waiting for the agent ${p.enrollMs} ms)\n`,
      );
    });
  pod
    .command('remove')
    .description('delete a pod (CNI DEL, sandbox, Pod object): it is out of the mesh when this returns')
    .argument('<name>', 'pod name')
    .option(...dirOpt)
    .action(async (name: string, flags: { stateDir: string }) => {
      const p = await (await import('../demo/demo-pods')).demoPodRemove(flags.stateDir, name);
      deps.stdout(`pod ${p.name} removed from ${p.node}\n`);
    });
}
