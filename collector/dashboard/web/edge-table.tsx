/** The map's edges as a table (the same filters apply): sortable by traffic, selectable for drafting. */
import type { GraphEdge, GraphNode } from '../../../common/dashboard-api';
import { bytes, count, percent, rate } from './format';

export function nodeLabel(n: GraphNode | undefined, id: string): string {
  if (!n) return id;
  return n.namespace !== undefined ? `${n.namespace}/${n.name}` : n.name;
}

export function EdgeTable(props: {
  edges: readonly GraphEdge[];
  nodes: ReadonlyMap<string, GraphNode>;
  selected: ReadonlySet<string>;
  onEdge(id: string, additive: boolean): void;
  onToggle(id: string): void;
}) {
  return (
    <table class="edges">
      <thead>
        <tr>
          <th aria-label="select" />
          <th>Source</th>
          <th>Destination</th>
          <th>Protocol</th>
          <th>Verdict</th>
          <th>Flows</th>
          <th>Requests</th>
          <th>req/s</th>
          <th>Errors</th>
          <th>p95</th>
          <th>Bytes/s</th>
          <th>mTLS</th>
        </tr>
      </thead>
      <tbody>
        {props.edges.map((e) => (
          <tr data-edge-id={e.id} class={`${e.denied ? 'denied' : ''}${props.selected.has(e.id) ? ' selected' : ''}`} onClick={(ev) => props.onEdge(e.id, ev.shiftKey || ev.ctrlKey || ev.metaKey)}>
            <td onClick={(ev) => ev.stopPropagation()}>
              <input type="checkbox" aria-label="select edge" checked={props.selected.has(e.id)} onChange={() => props.onToggle(e.id)} />
            </td>
            <td>{nodeLabel(props.nodes.get(e.source), e.source)}</td>
            <td>{nodeLabel(props.nodes.get(e.target), e.target)}</td>
            <td>{e.protocols.join(', ')}</td>
            <td>{e.denied ? `denied (${e.policies.join(', ') || 'mesh'})` : 'allowed'}</td>
            <td class="num">{count(e.flows)}</td>
            <td class="num">{count(e.requests)}</td>
            <td class="num">{rate(e.rps)}</td>
            <td class="num">{percent(e.errorRate)}</td>
            <td class="num">{e.p95Ms !== undefined ? `${e.p95Ms} ms` : '–'}</td>
            <td class="num">{bytes(e.bps)}</td>
            <td>{e.egress ? '–' : e.lock}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
