/** The policies in force, their history with each version's diff, and the version each agent enforces. */
import { useEffect, useState } from 'preact/hooks';
import { CONTROL_API, type PolicyHistoryResponse, type PolicyListResponse, type StatusResponse } from '../../../common/control-api';
import { control, get } from './api';

function Diff(props: { text: string }) {
  return (
    <pre class="diff">
      {props.text.split('\n').map((l) => (
        <span class={l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : ''}>{`${l}\n`}</span>
      ))}
    </pre>
  );
}

export function PoliciesView(props: { onError(e: unknown): void }) {
  const [list, setList] = useState<PolicyListResponse | undefined>();
  const [history, setHistory] = useState<PolicyHistoryResponse | undefined>();
  const [status, setStatus] = useState<StatusResponse | undefined>();
  const [open, setOpen] = useState<number | undefined>();
  useEffect(() => {
    let stop = false;
    let timer: number | undefined;
    const load = async (): Promise<void> => {
      try {
        const [l, h, s] = await Promise.all([
          get<PolicyListResponse>(control(CONTROL_API.policies)),
          get<PolicyHistoryResponse>(control(CONTROL_API.policyHistory)),
          get<StatusResponse>(control(CONTROL_API.status)),
        ]);
        if (stop) return;
        setList(l);
        setHistory(h);
        setStatus(s);
      } catch (e) {
        if (!stop) props.onError(e);
      }
      if (!stop) timer = window.setTimeout(() => void load(), 3000);
    };
    void load();
    return () => {
      stop = true;
      if (timer !== undefined) clearTimeout(timer);
    };
  }, []);
  if (!list || !history || !status) return <p>loading…</p>;
  return (
    <div class="policies-view">
      <section>
        <h2>Agents</h2>
        <table data-table="agents">
          <thead>
            <tr>
              <th>Node</th>
              <th>Connected</th>
              <th>Enforces</th>
              <th>Workloads</th>
            </tr>
          </thead>
          <tbody>
            {status.nodes.map((n) => (
              <tr data-node={n.node}>
                <td>{n.node}</td>
                <td>{n.connected ? 'yes' : 'no'}</td>
                <td>
                  {n.policyVersion === undefined ? 'not reported' : `version ${n.policyVersion}`}
                  {n.policyVersion !== undefined ? (n.policyVersion === status.policyVersion ? ' (current)' : ` (behind ${status.policyVersion})`) : ''}
                  {n.policyProblems?.length ? ` — refused: ${n.policyProblems.join('; ')}` : ''}
                </td>
                <td>{n.workloads}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section>
        <h2>Policies in force (version {list.version})</h2>
        <table data-table="policies">
          <thead>
            <tr>
              <th>ID</th>
              <th>Kind</th>
              <th>Namespace/name</th>
              <th>From</th>
              <th>Version</th>
              <th>Author</th>
            </tr>
          </thead>
          <tbody>
            {list.policies.map((p) => (
              <tr>
                <td>{p.id}</td>
                <td>{p.kind}</td>
                <td>
                  {p.namespace}/{p.name}
                </td>
                <td>{p.origin === 'dir' ? `policy dir (${p.file ?? '?'})` : 'API'}</td>
                <td>{p.version}</td>
                <td>{p.author}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section>
        <h2>History</h2>
        <ul class="history">
          {history.versions
            .slice()
            .reverse()
            .map((v) => (
              <li data-version={String(v.version)}>
                <button type="button" class="link" onClick={() => setOpen(open === v.version ? undefined : v.version)}>
                  version {v.version} · {new Date(v.time).toLocaleString()} · {v.author} · {v.action} · {v.changes.map((c) => `${c.op} ${c.kind} ${c.namespace}/${c.name}`).join(', ')}
                </button>
                {open === v.version ? v.changes.map((c) => <Diff text={c.diff} />) : null}
              </li>
            ))}
        </ul>
      </section>
    </div>
  );
}
