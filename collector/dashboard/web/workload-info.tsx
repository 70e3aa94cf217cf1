/** A workload node's details: where it runs, the policies selecting it, its egress rules. */
import { useEffect, useState } from 'preact/hooks';
import { DASHBOARD_API, type WorkloadResponse } from '../../../common/dashboard-api';
import { get } from './api';

export function WorkloadInfo(props: { name: string; onError(e: unknown): void }) {
  const [info, setInfo] = useState<WorkloadResponse | undefined>();
  useEffect(() => {
    let stop = false;
    setInfo(undefined);
    get<WorkloadResponse>(DASHBOARD_API.workload, { name: props.name }).then(
      (r) => !stop && setInfo(r),
      (e) => !stop && props.onError(e),
    );
    return () => {
      stop = true;
    };
  }, [props.name]);
  if (!info) return <p>loading…</p>;
  const w = info.workload;
  return (
    <div class="workload-info">
      {w ? (
        <p>
          on <strong>{w.node}</strong> as <code>{w.identity}</code>
        </p>
      ) : (
        <p>not registered now</p>
      )}
      <h4>Authorization policies</h4>
      {info.policies.length === 0 ? (
        <p class="muted">none select it: every caller is allowed</p>
      ) : (
        <ul data-list="policies">
          {info.policies.map((p) => (
            <li>
              {p.action} {p.namespace}/{p.name}
            </li>
          ))}
        </ul>
      )}
      <h4>Egress rules</h4>
      {info.egress.length === 0 ? (
        <p class="muted">no EgressPolicy selects it: it may reach anything outside the mesh</p>
      ) : (
        <ul data-list="egress">
          {info.egress.map((r) => (
            <li>
              #{r.id} {r.action} {[...r.hosts, ...r.cidrs].join(', ')}
              {r.ports.length ? ` ports ${r.ports.join(', ')}` : ''} ({r.namespace}/{r.policy})
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
