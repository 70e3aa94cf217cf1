/**
 * Figures for the dashboard at 1,000 workloads (not a test): a real collector holding simulated
 * flows of 1,000 workloads in 20 namespaces (each calling three others, some denials and egress)
 * over the last 10 minutes; then the graph API's answer time for the 5-minute and 1-hour windows
 * (all namespaces, capped; one namespace) with the longest event-loop stall meanwhile, and in headless Chromium the time to first paint, to
 * the drawn map, and what each live refresh (every second) costs the page's main thread.
 * Run: node dist/test/bench/dashboard-scale.js [flows per edge-minute, default 2]
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pino from 'pino';
import type { FlowRecord } from '../../common/flow';
import { DASHBOARD_API, SESSION_COOKIE, type GraphResponse, type TicketResponse } from '../../common/dashboard-api';
import { launchBrowser } from '../harness/browser';
import { apiGet } from '../integration/collector/flows-fixtures';
import { collector, Stack, TempDirs } from '../integration/collector/helpers';

const NAMESPACES = 20;
const PER_NAMESPACE = 50;
const CALLEES = 3;
const MINUTES = 10;

const workload = (i: number): { namespace: string; workload: string; ip: string } => ({
  namespace: `team-${Math.floor(i / PER_NAMESPACE)}`,
  workload: `svc-${i % PER_NAMESPACE}`,
  ip: `10.${Math.floor(i / 250)}.${i % 250}.10`,
});

function flows(perEdgeMinute: number, now: number): FlowRecord[] {
  const out: FlowRecord[] = [];
  const n = NAMESPACES * PER_NAMESPACE;
  for (let m = 0; m < MINUTES; m++) {
    for (let i = 0; i < n; i++) {
      const s = workload(i);
      for (let c = 1; c <= CALLEES; c++) {
        // mostly within the namespace, one call in three to the next namespace
        const j = c === 3 ? (i + PER_NAMESPACE + 7) % n : Math.floor(i / PER_NAMESPACE) * PER_NAMESPACE + ((i + c * 11) % PER_NAMESPACE);
        const d = workload(j);
        for (let k = 0; k < perEdgeMinute; k++) {
          const denied = (i + k + m) % 97 === 0;
          out.push({
            time: new Date(now - (MINUTES - m) * 60_000 + k * 1000 + c * 100).toISOString(),
            node: 'node-1',
            direction: 'inbound',
            source: { ip: s.ip, workload: s.workload, namespace: s.namespace, identity: `spiffe://cluster.local/ns/${s.namespace}/sa/${s.workload}` },
            destination: { ip: d.ip, port: 8080, workload: d.workload, namespace: d.namespace, identity: `spiffe://cluster.local/ns/${d.namespace}/sa/${d.workload}` },
            protocol: 'http',
            http: { method: 'GET', path: '/api', status: denied ? 403 : (i + k) % 50 === 0 ? 503 : 200 },
            verdict: denied ? 'denied' : 'allowed',
            reason: denied ? 'denied-by-policy' : 'no-policy',
            ...(denied ? { policy: `${d.namespace}/deny-some` } : {}),
            mtls: true,
            bytesSent: 300,
            bytesReceived: 1200,
            durationMs: 1 + ((i * 7 + k) % 40),
          });
        }
      }
      if (i % 10 === 0) {
        out.push({
          time: new Date(now - (MINUTES - m) * 60_000 + 500).toISOString(),
          node: 'node-1',
          direction: 'egress',
          source: { ip: s.ip, workload: s.workload, namespace: s.namespace },
          destination: { ip: '203.0.113.7', port: 443, host: `api-${i % 7}.example.com` },
          protocol: 'tls',
          verdict: 'allowed',
          reason: 'egress-allowed',
          mtls: false,
          bytesSent: 500,
          bytesReceived: 4000,
          durationMs: 20,
        });
      }
    }
  }
  return out;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const perEdgeMinute = Number(process.argv[2] ?? 2);
  const dirs = new TempDirs();
  const stack = new Stack();
  try {
    const col = await collector(stack, { dataDir: dirs.make('dash-scale'), log: pino({ level: 'silent' }) });
    const now = Date.now();
    const all = flows(perEdgeMinute, now);
    const t0 = performance.now();
    for (let i = 0, seq = 1; i < all.length; i += 500, seq++) await col.flows.ingest('node-1', { session: 'bench', seq, lost: 0, flows: all.slice(i, i + 500) });
    process.stdout.write(`${NAMESPACES * PER_NAMESPACE} workloads, ${all.length} flows over ${MINUTES} min, ingested in ${Math.round(performance.now() - t0)} ms\n`);

    const t = await apiGet(col, DASHBOARD_API.ticket, { token: col.adminToken }, 'POST', {});
    const { ticket, path } = JSON.parse(t.text) as TicketResponse;
    const s = await apiGet(col, DASHBOARD_API.session, {}, 'POST', { ticket });
    const cookie = /__Host-palisade-session=([A-Za-z0-9_-]+)/.exec(String(s.headers['set-cookie']))![1]!;
    for (const [what, windowMs, extra] of [
      ['5 min, all namespaces', 5 * 60_000, ''],
      ['1 h, all namespaces', 3_600_000, ''],
      ['5 min, one namespace', 5 * 60_000, '&namespaces=team-3'],
    ] as const) {
      const times: number[] = [];
      let g: GraphResponse | undefined;
      // the collector runs in this process: its event loop's longest stall while it answers
      const stalls = monitorEventLoopDelay({ resolution: 1 });
      stalls.enable();
      for (let i = 0; i < 15; i++) {
        const until = Date.now();
        const q = `${DASHBOARD_API.graph}?since=${until - windowMs}&until=${until}${extra}`;
        const a = performance.now();
        const r = await apiGet(col, q, { headers: { cookie: `${SESSION_COOKIE}=${cookie}` } });
        times.push(performance.now() - a);
        g = JSON.parse(r.text) as GraphResponse;
      }
      stalls.disable();
      process.stdout.write(
        `graph API, ${what}: median ${median(times).toFixed(1)} ms (first ${times[0]!.toFixed(1)} ms), event loop stalled at most ${(stalls.max / 1e6).toFixed(1)} ms; ${g!.edges.length} edges shown, ${g!.hidden.edges} hidden\n`,
      );
    }

    // the page: a fresh ticket (single use) for the browser
    const t2 = JSON.parse((await apiGet(col, DASHBOARD_API.ticket, { token: col.adminToken }, 'POST', {})).text) as TicketResponse;
    const browser = await launchBrowser('dashboard-scale');
    try {
      const page = browser.page;
      const started = Date.now();
      await page.goto(`https://127.0.0.1:${col.port}${path}#ticket=${t2.ticket}`);
      await page.waitForSelector('svg.map [data-edge-id]', { timeout: 60_000 });
      const drawn = Date.now() - started;
      const fcp = Number(await page.evaluate("performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint')?.startTime ?? -1"));
      const layouts = (await page.evaluate("performance.getEntriesByName('palisade-layout').map((m) => m.duration)")) as number[];
      process.stdout.write(`page: first contentful paint ${Math.round(fcp)} ms, map drawn ${drawn} ms after navigation (layout ${layouts.map((d) => Math.round(d)).join(', ')} ms, the first loading elkjs)\n`);
      await browser.screenshot('1000-workloads');
      const cdp = await browser.context.newCDPSession(page);
      await cdp.send('Performance.enable');
      const metric = async (): Promise<Record<string, number>> => Object.fromEntries(((await cdp.send('Performance.getMetrics')) as { metrics: Array<{ name: string; value: number }> }).metrics.map((m) => [m.name, m.value]));
      let refreshes = 0;
      page.on('response', (r) => {
        if (r.url().includes(DASHBOARD_API.graph)) refreshes++;
      });
      const a = await metric();
      await new Promise((r) => setTimeout(r, 10_000));
      const b = await metric();
      const per = (k: string): string => ((1000 * ((b[k] ?? 0) - (a[k] ?? 0))) / Math.max(refreshes, 1)).toFixed(1);
      process.stdout.write(`page, live: ${refreshes} refreshes in 10 s; per refresh ${per('TaskDuration')} ms main-thread work (script ${per('ScriptDuration')} ms, layout ${per('LayoutDuration')} ms, style ${per('RecalcStyleDuration')} ms)\n`);
      if (browser.errors.length) process.stdout.write(`page errors: ${browser.errors.join('; ')}\n`);
    } finally {
      await browser.close();
    }
  } finally {
    await stack.unwind();
    dirs.cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
