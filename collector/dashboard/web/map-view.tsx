/**
 * The map drawn as SVG: namespace boxes, nodes, and one edge per (source, destination) for
 * allowed traffic plus a red dashed one for denied traffic, each labelled with its rates and
 * mTLS lock; edges between the same two nodes (allowed and denied, either way) are drawn apart,
 * their labels stacked. Clicking selects (shift adds to the selection, for drafting a policy). Every edge
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

const center = (b: Box): { x: number; y: number } => ({ x: b.x + b.width / 2, y: b.y + b.height / 2 });

/** Pixels between the middles of parallel edges (the same two nodes, either way). */
export const PARALLEL_SPACING = 36;
/** Pixels between the labels of parallel edges, stacked (a label is 18 high). */
const LABEL_SPACING = 22;

/**
 * Where each edge sits among the edges between the same two nodes (allowed and denied, one each
 * way): its offset from the straight line, in px, to the side given by the pair's own direction
 * (from the smaller node id to the larger), so an edge and its reverse go to different sides.
 */
export function parallelSlots(edges: readonly GraphEdge[]): Map<string, { offset: number; slot: number }> {
  const pairs = new Map<string, GraphEdge[]>();
  for (const e of edges) {
    const k = e.source < e.target ? `${e.source}\u0000${e.target}` : `${e.target}\u0000${e.source}`;
    let g = pairs.get(k);
    if (!g) pairs.set(k, (g = []));
    g.push(e);
  }
  const out = new Map<string, { offset: number; slot: number }>();
  for (const g of pairs.values()) {
    g.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    g.forEach((e, i) => {
      const slot = i - (g.length - 1) / 2;
      out.set(e.id, { offset: slot * PARALLEL_SPACING, slot });
    });
  }
  return out;
}

function EdgeShape(props: { e: GraphEdge; from: Box; to: Box; offset: number; slot: number; selected: boolean; onEdge: MapViewProps['onEdge'] }) {
  const { e, from, to, offset, slot, selected } = props;
  const forward = to.x >= from.x + from.width;
  const backward = from.x >= to.x + to.width;
  // left to right (or right to left) between the boxes' sides, else between their tops and bottoms
  const down = to.y > from.y;
  const a = forward ? { x: from.x + from.width, y: from.y + from.height / 2 } : backward ? { x: from.x, y: from.y + from.height / 2 } : { x: from.x + from.width / 2, y: from.y + (down ? from.height : 0) };
  const b = forward ? { x: to.x, y: to.y + to.height / 2 } : backward ? { x: to.x + to.width, y: to.y + to.height / 2 } : { x: to.x + to.width / 2, y: to.y + (down ? 0 : to.height) };
  // the side parallel edges move to: perpendicular to the pair's direction (smaller id → larger)
  const [p, q] = e.source < e.target ? [center(from), center(to)] : [center(to), center(from)];
  const len = Math.hypot(q.x - p.x, q.y - p.y) || 1;
  const n = { x: -(q.y - p.y) / len, y: (q.x - p.x) / len };
  // ends apart a little (along the box side), middles apart by `offset` (a cubic's middle is 3/4 of its control points' offset)
  const endShift = Math.max(-12, Math.min(12, offset / 3));
  a.x += n.x * endShift;
  a.y += n.y * endShift;
  b.x += n.x * endShift;
  b.y += n.y * endShift;
  const horizontal = forward || backward;
  const dx = Math.max(40, Math.abs(b.x - a.x) / 2) * (backward ? -1 : 1);
  const dy = Math.max(30, Math.abs(b.y - a.y) / 2) * (down ? 1 : -1);
  const bend = (offset - endShift) * (4 / 3);
  const c1 = horizontal ? { x: a.x + dx + n.x * bend, y: a.y + n.y * bend } : { x: a.x + n.x * bend, y: a.y + dy + n.y * bend };
  const c2 = horizontal ? { x: b.x - dx + n.x * bend, y: b.y + n.y * bend } : { x: b.x + n.x * bend, y: b.y - dy + n.y * bend };
  const d = `M${a.x},${a.y} C${c1.x},${c1.y} ${c2.x},${c2.y} ${b.x},${b.y}`;
  // the label on the curve's middle (t = 0.5); where parallel edges run up or down their middles
  // sit side by side, closer than a label is wide, so their labels are stacked instead
  const mx = 0.125 * a.x + 0.375 * c1.x + 0.375 * c2.x + 0.125 * b.x;
  const cy = 0.125 * a.y + 0.375 * c1.y + 0.375 * c2.y + 0.125 * b.y;
  const my = Math.abs(n.y) >= 0.6 ? cy : cy - n.y * offset + slot * LABEL_SPACING;
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
  const slots = parallelSlots(props.edges);
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
        const at = slots.get(e.id)!;
        return <EdgeShape key={e.id} e={e} from={from} to={to} offset={at.offset} slot={at.slot} selected={props.selectedEdges.has(e.id)} onEdge={props.onEdge} />;
      })}
      {props.nodes.map((n) => {
        const box = layout.nodes.get(n.id);
        return box ? <NodeShape key={n.id} n={n} box={box} selected={props.selectedNode === n.id} onNode={props.onNode} /> : null;
      })}
    </svg>
  );
}
