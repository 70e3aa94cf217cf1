/**
 * The dashboard page: logs in with the ticket in the URL fragment, then shows the service map
 * (live, or a replay of the window), the edge table, and for the selection its flows, policies
 * and a draft policy; a second tab shows the policies, their history and each agent's version.
 * How it is served and what it may ask: docs/architecture.md "The dashboard".
 */
import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { DASHBOARD_API, type ConfigResponse, type GraphNode, type GraphResponse } from '../../../common/dashboard-api';
import { get, loginFromFragment, logout, SessionEnded } from './api';
import { Controls, replaySteps, WINDOWS, type Filters, type Replay, type WindowName } from './controls';
import { DraftPanel } from './draft-panel';
import { EdgeTable, nodeLabel } from './edge-table';
import { FlowTable, type FlowQuery } from './flow-table';
import { layoutKey, layOut, type Layout } from './layout';
import { MapView } from './map-view';
import { PoliciesView } from './policies-view';
import { WorkloadInfo } from './workload-info';
import './style.css';

const REFRESH_MS = 1000;
const REPLAY_FRAME_MS = 1200;

function App() {
  const [state, setState] = useState<'login' | 'ok' | 'ended'>('login');
  const [error, setError] = useState<string | undefined>();
  const [tab, setTab] = useState<'map' | 'policies'>('map');
  const [win, setWin] = useState<WindowName>('5m');
  const [filters, setFilters] = useState<Filters>({ namespaces: [], verdict: '', workload: '', protocol: '' });
  const [replay, setReplay] = useState<Replay | undefined>();
  const [graph, setGraph] = useState<GraphResponse | undefined>();
  const [updated, setUpdated] = useState<number | undefined>();
  const [layout, setLayout] = useState<{ key: string; layout: Layout } | undefined>();
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [focus, setFocus] = useState<{ edge?: string; node?: string }>({});
  const [config, setConfig] = useState<ConfigResponse>({});
  const layingOut = useRef<string | undefined>(undefined);

  const onError = (e: unknown): void => {
    if (e instanceof SessionEnded) setState('ended');
    else setError(e instanceof Error ? e.message : String(e));
  };

  useEffect(() => {
    loginFromFragment()
      .then(() => get<ConfigResponse>(DASHBOARD_API.config))
      .then((c) => {
        setConfig(c);
        setState('ok');
      }, onError);
  }, []);

  // the graph: every second while live; once per replay step
  useEffect(() => {
    if (state !== 'ok') return;
    let stop = false;
    let timer: number | undefined;
    const w = WINDOWS[win];
    const load = async (): Promise<void> => {
      const until = replay ? replay.anchor - w.ms + (replay.step + 1) * w.stepMs : Date.now();
      const since = replay ? until - w.stepMs : until - w.ms;
      try {
        const g = await get<GraphResponse>(DASHBOARD_API.graph, {
          since,
          until,
          namespaces: filters.namespaces.join(','),
          verdicts: filters.verdict,
          protocols: filters.protocol,
          workload: filters.workload,
        });
        if (stop) return;
        setGraph(g);
        setUpdated(Date.now());
        setError(undefined);
      } catch (e) {
        if (!stop) onError(e);
      }
      if (!stop && !replay) timer = window.setTimeout(() => void load(), REFRESH_MS);
    };
    void load();
    return () => {
      stop = true;
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [state, win, JSON.stringify(filters), replay?.anchor, replay?.step]);

  // replay: the next step after a pause, until the end of the window
  useEffect(() => {
    if (!replay?.playing) return;
    const t = window.setTimeout(() => {
      const last = replaySteps(win) - 1;
      setReplay(replay.step >= last ? { ...replay, playing: false } : { ...replay, step: replay.step + 1 });
    }, REPLAY_FRAME_MS);
    return () => clearTimeout(t);
  }, [replay?.playing, replay?.step]);

  // lay out again only when the nodes or the pairs of nodes change
  const key = graph ? layoutKey(graph.nodes, graph.edges) : '';
  useEffect(() => {
    if (!graph || layout?.key === key || layingOut.current === key) return;
    layingOut.current = key;
    const started = performance.now();
    layOut(graph.nodes, graph.edges).then((l) => {
      performance.measure('palisade-layout', { start: started }); // what a layout costs (test/bench/dashboard-scale.ts)
      if (layingOut.current === key) setLayout({ key, layout: l });
    }, onError);
  }, [key]);

  const nodes = useMemo(() => new Map<string, GraphNode>((graph?.nodes ?? []).map((n) => [n.id, n])), [graph]);
  const selectEdge = (id: string, additive: boolean): void => {
    const next = new Set(additive ? selected : []);
    if (additive && next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
    setFocus({ edge: id });
  };
  const toggle = (id: string): void => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };

  if (state === 'login') return <p class="center">signing in…</p>;
  if (state === 'ended')
    return (
      <div class="center" data-state="ended">
        <h1>Session ended</h1>
        <p>
          Run <code>palisade dashboard</code> for a new link.
        </p>
      </div>
    );

  const focusEdge = focus.edge ? graph?.edges.find((e) => e.id === focus.edge) : undefined;
  const focusNode = focus.node ? nodes.get(focus.node) : undefined;
  const live = replay === undefined;
  const flowQuery = (extra: Partial<FlowQuery>): FlowQuery => ({
    since: graph!.window.since,
    until: live ? undefined : graph!.window.until,
    verdicts: filters.verdict || undefined,
    protocols: filters.protocol || undefined,
    ...extra,
  });

  return (
    <div class="app">
      <header>
        <h1>Palisade</h1>
        <nav>
          <button type="button" name="tab-map" class={tab === 'map' ? 'active' : ''} onClick={() => setTab('map')}>
            Service map
          </button>
          <button type="button" name="tab-policies" class={tab === 'policies' ? 'active' : ''} onClick={() => setTab('policies')}>
            Policies
          </button>
        </nav>
        <span class="spacer" />
        <button type="button" name="logout" class="link" onClick={() => logout().then(() => setState('ended'), onError)}>
          Log out
        </button>
      </header>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {tab === 'policies' ? (
        <PoliciesView onError={onError} />
      ) : (
        <>
          <Controls window={win} onWindow={setWin} filters={filters} onFilters={setFilters} namespaces={graph?.namespaces ?? []} replay={replay} onReplay={setReplay} updated={updated} />
          <main>
            <div class="map-pane">
              {graph && graph.hidden.edges > 0 ? (
                <p class="cap" data-hidden-edges={String(graph.hidden.edges)}>
                  Showing the {graph.edges.length} busiest edges; {graph.hidden.edges} more edges ({graph.hidden.nodes} nodes) are hidden — filter by namespace, workload, verdict or protocol to see more.
                </p>
              ) : null}
              {graph && graph.edges.length === 0 ? <p class="empty">No traffic in this window{filters.namespaces.length || filters.verdict || filters.workload || filters.protocol ? ' with these filters' : ''}.</p> : null}
              {graph && layout ? (
                <MapView
                  nodes={graph.nodes}
                  edges={graph.edges}
                  layout={layout.layout}
                  selectedEdges={selected}
                  selectedNode={focus.node}
                  onEdge={selectEdge}
                  onNode={(id) => {
                    setFocus({ node: id });
                    setSelected(new Set());
                  }}
                />
              ) : null}
              {graph ? <EdgeTable edges={graph.edges} nodes={nodes} selected={selected} onEdge={selectEdge} onToggle={toggle} /> : null}
            </div>
            <aside data-panel={focusEdge ? 'edge' : focusNode ? 'node' : 'none'}>
              {focusEdge ? (
                <>
                  <h2>
                    {nodeLabel(nodes.get(focusEdge.source), focusEdge.source)} → {nodeLabel(nodes.get(focusEdge.target), focusEdge.target)}
                    {focusEdge.denied ? ' (denied)' : ''}
                  </h2>
                  {focusEdge.denied ? <p class="denied-by">denied by {focusEdge.policies.join(', ') || 'the mesh'}</p> : null}
                  <FlowTable query={flowQuery({ source: focusEdge.source, target: focusEdge.target, denied: focusEdge.denied })} traceUrl={config.traceUrl} onError={onError} />
                  {focusEdge.target.startsWith('w:') ? <WorkloadInfo name={focusEdge.target.slice(2)} onError={onError} /> : focusEdge.source.startsWith('w:') ? <WorkloadInfo name={focusEdge.source.slice(2)} onError={onError} /> : null}
                </>
              ) : focusNode ? (
                <>
                  <h2>{nodeLabel(focusNode, focusNode.id)}</h2>
                  {focusNode.kind === 'workload' ? <WorkloadInfo name={`${focusNode.namespace}/${focusNode.name}`} onError={onError} /> : <p>{focusNode.kind === 'external' ? 'a destination outside the mesh' : 'a source the mesh does not know'}</p>}
                  <FlowTable query={flowQuery({ node: focusNode.id })} traceUrl={config.traceUrl} onError={onError} />
                </>
              ) : (
                <p class="muted">Click an edge or a node for its flows and policies; shift-click edges (or tick them in the table) to draft a policy.</p>
              )}
              {selected.size > 0 && graph ? <DraftPanel edges={[...selected]} since={graph.window.since} until={graph.window.until} onError={onError} /> : null}
            </aside>
          </main>
        </>
      )}
    </div>
  );
}

render(<App />, document.getElementById('app')!);
