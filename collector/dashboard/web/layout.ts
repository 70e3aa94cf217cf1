/**
 * Where each node goes: elkjs's layered layout, left to right, with room in the middle of each
 * edge for its labels (past BIG_GRAPH_NODES, packed in
 * their boxes, the boxes packed), with one box per namespace, one
 * for destinations outside the mesh and one for sources the mesh does not know. Positions are
 * absolute; a graph with the same nodes and edges gets the same layout (the map only lays out
 * again when they change).
 */
import type { ELK as Elk, ElkNode } from 'elkjs/lib/elk.bundled.js';
import type { GraphEdge, GraphNode } from '../../../common/dashboard-api';

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Layout {
  nodes: Map<string, Box>;
  groups: Array<Box & { id: string; label: string }>;
  width: number;
  height: number;
}

// elkjs is most of the bundle: loaded on first use, in its own chunk, so the page paints first
let elk: Promise<Elk> | undefined;
const loadElk = (): Promise<Elk> => (elk ??= import('elkjs/lib/elk.bundled.js').then((m) => new m.default()));
export const NODE_HEIGHT = 40;
/** Above this many nodes the namespaces are laid out one by one (see layOut). */
export const BIG_GRAPH_NODES = 60;
const PACKED: Record<string, string> = { 'elk.algorithm': 'rectpacking', 'elk.aspectRatio': '1.6', 'elk.spacing.nodeNode': '30' };
/** An edge label's room in the layout: about the widest label (rates, error share, p95) and one row per edge. */
const LABEL_WIDTH = 210;
const LABEL_ROW = 24;
const BOX_SPACING: Record<string, string> = {
  'elk.layered.spacing.nodeNodeBetweenLayers': '150',
  'elk.spacing.nodeNode': '40',
};
const LAYERED: Record<string, string> = {
  ...BOX_SPACING,
  'elk.direction': 'RIGHT',
  'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES',
};
const nodeWidth = (n: GraphNode): number => Math.min(260, Math.max(110, 30 + 7.5 * n.name.length));

export function groupOf(n: GraphNode): { id: string; label: string } {
  if (n.kind === 'workload') return { id: `ns:${n.namespace}`, label: `namespace ${n.namespace}` };
  if (n.kind === 'external') return { id: 'outside', label: 'outside the mesh' };
  return { id: 'unknown', label: 'unknown sources' };
}

/** A key that changes exactly when the layout must (the nodes, the edges: a denied one beside an allowed one needs room). */
export const layoutKey = (nodes: readonly GraphNode[], edges: readonly GraphEdge[]): string => `${nodes.map((n) => n.id).join('|')}#${edges.map((e) => e.id).sort().join('|')}`;

export async function layOut(nodes: readonly GraphNode[], edges: readonly GraphEdge[]): Promise<Layout> {
  const groups = new Map<string, ElkNode & { label: string }>();
  for (const n of nodes) {
    const g = groupOf(n);
    let box = groups.get(g.id);
    if (!box) {
      box = {
        id: g.id,
        label: g.label,
        layoutOptions: { 'elk.padding': '[top=34,left=16,bottom=16,right=16]' },
        children: [],
      };
      groups.set(g.id, box);
    }
    box.children!.push({ id: n.id, width: nodeWidth(n), height: NODE_HEIGHT });
  }
  const perPair = new Map<string, number>();
  for (const e of edges) perPair.set(`${e.source}\u0000${e.target}`, (perPair.get(`${e.source}\u0000${e.target}`) ?? 0) + 1);
  const pairs = [...perPair.keys()].sort();
  const big = nodes.length > BIG_GRAPH_NODES;
  // the boxes' own spacing: elk applies a box's options to what is inside it (the root's stop at the boxes)
  for (const g of groups.values()) Object.assign(g.layoutOptions!, big ? PACKED : BOX_SPACING);
  const graph: ElkNode = {
    id: 'root',
    // one layered layout across the namespaces while it is small; past that the workloads of each
    // namespace are packed into a box and the boxes packed (a layered layout of 150 edges took
    // seconds on a busy machine and came out as long thin strips)
    layoutOptions: big
      ? { ...PACKED, 'elk.hierarchyHandling': 'SEPARATE_CHILDREN', 'elk.spacing.nodeNode': '60' }
      : { ...LAYERED, 'elk.algorithm': 'layered', 'elk.hierarchyHandling': 'INCLUDE_CHILDREN', 'elk.spacing.componentComponent': '50' },
    children: [...groups.keys()].sort().map((k) => groups.get(k)!),
    edges: pairs.map((p, i) => {
      const [s, t] = p.split('\u0000');
      // room for the labels of this pair's edges (allowed and denied), stacked, in the middle:
      // the layered layout then keeps the two layers that far apart and parallel edges apart
      const labels = big ? [] : [{ id: `l${i}`, text: ' ', width: LABEL_WIDTH, height: LABEL_ROW * (perPair.get(p) ?? 1), layoutOptions: { 'elk.edgeLabels.placement': 'CENTER' } }];
      return { id: `e${i}`, sources: [s!], targets: [t!], labels };
    }),
  };
  const out = await (await loadElk()).layout(graph);
  const layout: Layout = { nodes: new Map(), groups: [], width: out.width ?? 0, height: out.height ?? 0 };
  for (const g of out.children ?? []) {
    const gx = g.x ?? 0;
    const gy = g.y ?? 0;
    layout.groups.push({ id: g.id, label: groups.get(g.id)!.label, x: gx, y: gy, width: g.width ?? 0, height: g.height ?? 0 });
    for (const c of g.children ?? []) layout.nodes.set(c.id, { x: gx + (c.x ?? 0), y: gy + (c.y ?? 0), width: c.width ?? 0, height: c.height ?? 0 });
  }
  return layout;
}
