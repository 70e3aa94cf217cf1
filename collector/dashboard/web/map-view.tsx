/**
 * The map drawn as SVG: namespace boxes, nodes, and one edge per (source, destination) for
 * allowed traffic plus a red dashed one for denied traffic, each labelled with its rates and
 * mTLS lock. Clicking selects (shift adds to the selection, for drafting a policy). Every edge
 * and node carries data-* attributes naming it, so tests and tools can find them.
 */
import type { GraphEdge, GraphNode, Lock } from '../../../common/dashboard-api';
import { bytes, count, percent, rate } from './format';
import type { Box, Layout } from './layout';

export interface MapViewProps {
  nodes: readonly GraphNode[];
  edges: readonly GraphEdge[];
  layout: Layout;
  selectedEdges: ReadonlySet<string>;
  selectedNode: string | undefined;
  onEdge(id: string, additive: boolean): void;
  onNode(id: string): void;
}

const LOCK_TEXT: Record<Lock, string> = {
  full: 'mTLS: every flow was mutual TLS between nodes or node-local',
  partial: 'mTLS: only some flows were protected',
  none: 'mTLS: none of these flows was protected',
};

function LockIcon(props: { lock: Lock; x: number; y: number }) {
  const { lock, x, y } = props;
  const color = lock === 'full' ? '#1a7f37' : lock === 'partial' ? '#bf8700' : '#cf222e';
  // shackle closed (full, partial) or open (none)
  const shackle = lock === 'none' ? `M${x + 2},${y + 5} v-3 a3,3 0 0 1 6,0` : `M${x + 2},${y + 5} v-2.5 a3,3 0 0 1 6,0 v2.5`;
  return (
    <g class="lock" data-lock={lock}>
      <title>{LOCK_TEXT[lock]}</title>
      <path d={shackle} fill="none" stroke={color} stroke-width="1.6" />
      <rect x={x} y={y + 5} width="10" height="7" rx="1.5" fill={color} />
    </g>
  );
}

function edgeLabel(e: GraphEdge): string {
  if (e.denied) return `denied ${count(e.flows)}× by ${e.policies.length ? e.policies.join(', ') : 'the mesh'}`;
  if (e.requests > 0) return `${rate(e.rps)} req/s · ${percent(e.errorRate)} err${e.p95Ms !== undefined ? ` · p95 ${e.p95Ms} ms` : ''}`;
  return `${rate(e.fps ?? 0)} conn/s · ${bytes(e.bps)}/s`;
}

function anchor(b: Box, side: 'in' | 'out'): { x: number; y: number } {
  return { x: side === 'out' ? b.x + b.width : b.x, y: b.y + b.height / 2 };
}

function EdgeShape(props: { e: GraphEdge; from: Box; to: Box; bend: number; selected: boolean; onEdge: MapViewProps['onEdge'] }) {
  const { e, from, to, bend, selected } = props;
  const forward = to.x >= from.x + from.width;
  const a = forward ? anchor(from, 'out') : { x: from.x + from.width / 2, y: from.y + (to.y > from.y ? from.height : 0) };
  const b = forward ? anchor(to, 'in') : { x: to.x + to.width / 2, y: to.y + (to.y > from.y ? 0 : to.height) };
  const dx = Math.max(40, Math.abs(b.x - a.x) / 2);
  const c1 = forward ? { x: a.x + dx, y: a.y + bend } : { x: a.x + bend, y: (a.y + b.y) / 2 };
  const c2 = forward ? { x: b.x - dx, y: b.y + bend } : { x: b.x + bend, y: (a.y + b.y) / 2 };
  const d = `M${a.x},${a.y} C${c1.x},${c1.y} ${c2.x},${c2.y} ${b.x},${b.y}`;
  // the curve's midpoint (t = 0.5)
  const mx = 0.125 * a.x + 0.375 * c1.x + 0.375 * c2.x + 0.125 * b.x;
  const my = 0.125 * a.y + 0.375 * c1.y + 0.375 * c2.y + 0.125 * b.y;
  const stroke = e.denied ? '#cf222e' : e.errorRate > 0.05 ? '#d4731b' : '#4a6fd4';
  const width = Math.min(6, 1.5 + Math.log10(1 + e.flows));
  const label = edgeLabel(e);
  const labelWidth = 16 + label.length * 6.1;
  return (
    <g
      class={`edge${e.denied ? ' denied' : ''}${selected ? ' selected' : ''}`}
      data-edge-id={e.id}
      data-source={e.source}
      data-target={e.target}
      data-denied={String(e.denied)}
      data-lock={e.egress ? undefined : e.lock}
      data-flows={String(e.flows)}
      data-requests={String(e.requests)}
      data-policies={e.policies.join(',')}
      onClick={(ev) => props.onEdge(e.id, ev.shiftKey || ev.ctrlKey || ev.metaKey)}
    >
      <title>{`${e.source} → ${e.target}: ${label}`}</title>
      <path class="hit" d={d} fill="none" stroke="transparent" stroke-width="14" />
      <path d={d} fill="none" stroke={selected ? '#111' : stroke} stroke-width={selected ? width + 1.5 : width} stroke-dasharray={e.denied ? '7 5' : undefined} marker-end={`url(#arrow-${e.denied ? 'denied' : 'ok'})`} />
      <g transform={`translate(${mx - labelWidth / 2},${my - 9})`}>
        <rect class="label-bg" width={labelWidth} height="18" rx="4" fill="#fff" fill-opacity="0.92" stroke={e.denied ? '#cf222e' : '#d0d7de'} />
        {!e.egress && !e.denied ? <LockIcon lock={e.lock} x={4} y={2} /> : null}
        <text class="edge-label" x={!e.egress && !e.denied ? 18 : 6} y="13" font-size="11" fill={e.denied ? '#a40e26' : '#24292f'}>
          {label}
        </text>
      </g>
    </g>
  );
}

function NodeShape(props: { n: GraphNode; box: Box; selected: boolean; onNode: MapViewProps['onNode'] }) {
  const { n, box, selected } = props;
  const deniedOnly = n.kind === 'external' && n.denied > 0 && n.denied === n.flowsIn;
  const stroke = selected ? '#111' : n.kind === 'external' ? (deniedOnly ? '#cf222e' : '#1a7f37') : n.kind === 'address' ? '#8c959f' : '#4a6fd4';
  const fill = n.kind === 'external' ? (deniedOnly ? '#ffebe9' : '#dafbe1') : n.kind === 'address' ? '#f6f8fa' : '#ddf4ff';
  const status = n.kind === 'external' ? (deniedOnly ? 'denied' : n.denied > 0 ? 'partly denied' : 'allowed') : undefined;
  return (
    <g class={`node ${n.kind}${selected ? ' selected' : ''}`} data-node-id={n.id} data-kind={n.kind} data-egress={status} transform={`translate(${box.x},${box.y})`} onClick={() => props.onNode(n.id)}>
      <title>{`${n.namespace ? `${n.namespace}/` : ''}${n.name} — in ${count(n.flowsIn)}, out ${count(n.flowsOut)}${n.denied ? `, denied ${count(n.denied)}` : ''}${status ? ` (egress ${status})` : ''}`}</title>
      <rect width={box.width} height={box.height} rx="8" fill={fill} stroke={stroke} stroke-width={selected ? 2.5 : 1.5} />
      <text x={box.width / 2} y={box.height / 2 + 4} text-anchor="middle" font-size="13" font-weight="600" fill="#24292f">
        {n.name}
      </text>
      {n.denied > 0 ? (
        <g transform={`translate(${box.width - 10},-8)`}>
          <circle r="9" fill="#cf222e" />
          <text y="4" text-anchor="middle" font-size="10" fill="#fff">
            {n.denied > 99 ? '99+' : n.denied}
          </text>
        </g>
      ) : null}
    </g>
  );
}

export function MapView(props: MapViewProps) {
  const { layout } = props;
  const pairs = new Set(props.edges.map((e) => `${e.source}>${e.target}`));
  const pad = 30;
  return (
    <svg class="map" role="img" aria-label="service map" viewBox={`${-pad} ${-pad} ${layout.width + 2 * pad} ${layout.height + 2 * pad}`} preserveAspectRatio="xMidYMin meet">
      <defs>
        <marker id="arrow-ok" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" fill="#4a6fd4" />
        </marker>
        <marker id="arrow-denied" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" fill="#cf222e" />
        </marker>
      </defs>
      {layout.groups.map((g) => (
        <g class="group" data-group={g.id}>
          <rect x={g.x} y={g.y} width={g.width} height={g.height} rx="10" fill="#f6f8fa" stroke="#d0d7de" stroke-dasharray={g.id === 'outside' ? '4 3' : undefined} />
          <text x={g.x + 12} y={g.y + 21} font-size="12" fill="#57606a">
            {g.label}
          </text>
        </g>
      ))}
      {props.edges.map((e) => {
        const from = layout.nodes.get(e.source);
        const to = layout.nodes.get(e.target);
        if (!from || !to) return null;
        // an allowed and a denied edge between the same pair bend apart
        const twin = pairs.has(`${e.source}>${e.target}`) && props.edges.some((x) => x !== e && x.source === e.source && x.target === e.target);
        const bend = twin ? (e.denied ? 26 : -26) : 0;
        return <EdgeShape key={e.id} e={e} from={from} to={to} bend={bend} selected={props.selectedEdges.has(e.id)} onEdge={props.onEdge} />;
      })}
      {props.nodes.map((n) => {
        const box = layout.nodes.get(n.id);
        return box ? <NodeShape key={n.id} n={n} box={box} selected={props.selectedNode === n.id} onNode={props.onNode} /> : null;
      })}
    </svg>
  );
}
