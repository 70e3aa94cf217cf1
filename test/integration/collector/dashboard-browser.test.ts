/**
 * The dashboard page in headless Chromium against a real collector (no mesh: the flows are handed
 * to its store as an agent's batch would be): a traced flow's trace id links to the tracing UI
 * through the collector's --trace-url, an untraced one shows no link; edges between the same two
 * workloads (allowed, denied, and the reverse direction) are drawn apart, each clickable at its
 * middle. Screenshots under .artifacts/dashboard-browser/.
 */
import { strict as assert } from 'node:assert';
import type { RunningCollector } from '../../../collector/collector';
import { DASHBOARD_API, type TicketResponse } from '../../../common/dashboard-api';
import type { FlowRecord } from '../../../common/flow';
import { silentLogger } from '../../../common/log';
import { waitFor } from '../../harness';
import { launchBrowser, type Browser } from '../../harness/browser';
import { apiGet } from './flows-fixtures';
import { collector, Stack, TempDirs } from './helpers';

const TRACE_URL = 'https://jaeger.example/trace/{traceId}';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT = 'w:default/client';
const WEB = 'w:default/web';
const ALLOWED = `${CLIENT}->${WEB}`;
const DENIED = `${CLIENT}->${WEB}#denied`;
const REVERSE = `${WEB}->${CLIENT}`;

const end = (ip: string, name: string, port?: number): FlowRecord['source'] => ({
  ip,
  ...(port !== undefined && { port }),
  workload: name,
  namespace: 'default',
  identity: `spiffe://cluster.local/ns/default/sa/${name}`,
});

function flow(i: number, f: Partial<FlowRecord>): FlowRecord {
  return {
    time: new Date(Date.now() - 20_000 + i).toISOString(),
    node: 'node-1',
    direction: 'inbound',
    source: end('10.0.1.10', 'client'),
    destination: end('10.0.1.20', 'web', 8080),
    protocol: 'http',
    http: { method: 'GET', path: `/item/${i}`, status: 200 },
    verdict: 'allowed',
    reason: 'no-policy',
    mtls: true,
    bytesSent: 100,
    bytesReceived: 400,
    durationMs: 3,
    ...f,
  };
}

const FLOWS: FlowRecord[] = [
  flow(0, { traceId: TRACE_ID }),
  flow(1, {}),
  flow(2, { verdict: 'denied', reason: 'denied-by-policy', policy: 'default/deny-admin', http: { method: 'POST', path: '/admin', status: 403 } }),
  flow(3, { source: end('10.0.1.20', 'web'), destination: end('10.0.1.10', 'client', 9000), http: { method: 'GET', path: '/callback', status: 200 } }),
];

describe('Dashboard page (headless Chromium): trace links and parallel edges', function () {
  this.timeout(120_000);
  const dirs = new TempDirs();
  const stack = new Stack();
  let col: RunningCollector;
  let browser: Browser;

  before(async function () {
    col = await collector(stack, { dataDir: dirs.make('dash-browser-'), log: silentLogger(), traceUrl: TRACE_URL });
    await col.flows.ingest('node-1', { session: 'test', seq: 1, lost: 0, flows: FLOWS });
    const t = await apiGet(col, DASHBOARD_API.ticket, { token: col.adminToken }, 'POST', {});
    const { ticket, path } = JSON.parse(t.text) as TicketResponse;
    browser = await launchBrowser('dashboard-browser');
    await browser.page.goto(`https://127.0.0.1:${col.port}${path}#ticket=${ticket}`);
    await browser.page.waitForSelector(`svg.map [data-edge-id="${REVERSE}"]`, { timeout: 60_000 });
  });

  after(async function () {
    await browser?.close();
    await stack.unwind();
    dirs.cleanup();
  });

  /** The visible path's middle and the label's box of an edge, in page pixels. */
  async function geometry(id: string): Promise<{ mid: { x: number; y: number }; label: { x: number; y: number; width: number; height: number } }> {
    return browser.page.locator(`svg.map g.edge[data-edge-id="${id}"]`).evaluate((g) => {
      type SvgPath = { getTotalLength(): number; getPointAtLength(l: number): { x: number; y: number }; getScreenCTM(): { a: number; b: number; c: number; d: number; e: number; f: number } | null };
      const path = g.querySelectorAll('path')[1] as unknown as SvgPath;
      const p = path.getPointAtLength(path.getTotalLength() / 2);
      const m = path.getScreenCTM()!;
      const r = g.querySelector('rect.label-bg')!.getBoundingClientRect();
      return { mid: { x: m.a * p.x + m.c * p.y + m.e, y: m.b * p.x + m.d * p.y + m.f }, label: { x: r.x, y: r.y, width: r.width, height: r.height } };
    });
  }

  it('draws the allowed, the denied and the reverse edge between two workloads apart: middles and labels do not overlap, a click at each middle selects that edge', async function () {
    const ids = [ALLOWED, DENIED, REVERSE];
    const g = await Promise.all(ids.map((id) => geometry(id)));
    await browser.screenshot('parallel-edges');
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        const [a, b] = [g[i]!, g[j]!];
        const apart = Math.hypot(a.mid.x - b.mid.x, a.mid.y - b.mid.y);
        assert.ok(apart >= 15, `${ids[i]} and ${ids[j]}: middles ${apart.toFixed(1)} px apart`);
        const overlap = a.label.x < b.label.x + b.label.width && b.label.x < a.label.x + a.label.width && a.label.y < b.label.y + b.label.height && b.label.y < a.label.y + a.label.height;
        assert.ok(!overlap, `${ids[i]} and ${ids[j]}: labels overlap ${JSON.stringify([a.label, b.label])}`);
      }
    }
    // no label hides under a workload's box
    const boxes = await browser.page.locator('svg.map g.node rect').evaluateAll((rs) => rs.map((r) => r.getBoundingClientRect()).map((r) => ({ x: r.x, y: r.y, width: r.width, height: r.height })));
    for (let i = 0; i < ids.length; i++) {
      const l = g[i]!.label;
      for (const b of boxes) assert.ok(!(l.x < b.x + b.width && b.x < l.x + l.width && l.y < b.y + b.height && b.y < l.y + l.height), `${ids[i]}'s label ${JSON.stringify(l)} overlaps a node ${JSON.stringify(b)}`);
    }
    for (let i = 0; i < ids.length; i++) {
      await browser.page.mouse.click(g[i]!.mid.x, g[i]!.mid.y);
      await waitFor(async () => (await browser.page.locator('svg.map g.edge.selected').getAttribute('data-edge-id')) === ids[i] || undefined, 5000, { what: `${ids[i]} selected by a click at its middle` });
    }
  });

  it("links a traced flow's trace id to --trace-url's tracing UI, and shows no link for an untraced flow", async function () {
    await browser.page.locator(`svg.map [data-edge-id="${ALLOWED}"] path.hit`).dispatchEvent('click');
    await waitFor(async () => (await browser.page.locator('aside .flow-table tbody tr').count()) === 2 || undefined, 10_000, { what: "the edge's two flows" });
    const link = browser.page.locator(`aside .flow-table td.trace[data-trace-id="${TRACE_ID}"] a`);
    assert.equal(await link.getAttribute('href'), `https://jaeger.example/trace/${TRACE_ID}`);
    assert.equal(await link.getAttribute('target'), '_blank');
    assert.match((await link.getAttribute('rel')) ?? '', /noopener/);
    assert.equal(await link.textContent(), TRACE_ID);
    const cells = await browser.page.locator('aside .flow-table tbody tr').evaluateAll((trs) => trs.map((tr) => tr.querySelector('td:last-child')!.textContent));
    assert.deepEqual(cells.sort(), [TRACE_ID, '–'].sort());
    assert.equal(await browser.page.locator('aside .flow-table a').count(), 1, 'only the traced flow has a link');
    await browser.screenshot('trace-link');
    assert.deepEqual(browser.errors, []);
  });
});
