/**
 * A policy drafted from the selected edges: editable YAML to copy, test against the recorded
 * flows (policy test) and apply (policy apply) — as the admin, audited like the CLI's writes.
 */
import { useState } from 'preact/hooks';
import { CONTROL_API, type PolicyChangeResponse, type PolicyTestResponse } from '../../../common/control-api';
import { DASHBOARD_API, type DraftResponse } from '../../../common/dashboard-api';
import { ApiError, control, post } from './api';

export function DraftPanel(props: { edges: string[]; since: number; until: number; onError(e: unknown): void }) {
  const [draft, setDraft] = useState<DraftResponse | undefined>();
  const [text, setText] = useState('');
  const [result, setResult] = useState<{ kind: 'test'; r: PolicyTestResponse } | { kind: 'apply'; r: PolicyChangeResponse } | { kind: 'problem'; lines: string[] } | undefined>();
  const files = (): Array<{ source: string; text: string }> => [{ source: 'dashboard-draft.yaml', text }];
  const guard = async (f: () => Promise<void>): Promise<void> => {
    try {
      await f();
    } catch (e) {
      if (e instanceof ApiError) setResult({ kind: 'problem', lines: [e.message, ...e.problems] });
      else props.onError(e);
    }
  };
  return (
    <section class="draft">
      <h3>Policy from {props.edges.length} selected edge{props.edges.length === 1 ? '' : 's'}</h3>
      <button
        type="button"
        name="draft"
        onClick={() =>
          guard(async () => {
            const d = await post<DraftResponse>(DASHBOARD_API.draft, { edges: props.edges, since: props.since, until: props.until });
            setDraft(d);
            setText(d.yaml);
            setResult(undefined);
          })
        }
      >
        Draft policy
      </button>
      {draft ? (
        <>
          <ul class="summary">
            {draft.summary.map((l) => (
              <li>{l}</li>
            ))}
          </ul>
          <textarea name="draft-yaml" rows={14} spellcheck={false} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
          <div class="buttons">
            <button type="button" name="copy" onClick={() => void navigator.clipboard?.writeText(text)}>
              Copy
            </button>
            <button type="button" name="test" onClick={() => guard(async () => setResult({ kind: 'test', r: await post<PolicyTestResponse>(control(CONTROL_API.policyTest), { files: files(), since: props.since }) }))}>
              Test against recorded flows
            </button>
            <button
              type="button"
              name="apply"
              onClick={() => {
                if (!confirm('Apply this policy to the mesh now?')) return;
                void guard(async () => setResult({ kind: 'apply', r: await post<PolicyChangeResponse>(control(CONTROL_API.policyApply), { files: files() }) }));
              }}
            >
              Apply
            </button>
          </div>
        </>
      ) : null}
      {result?.kind === 'problem' ? (
        <pre class="problem" data-result="problem">
          {result.lines.join('\n')}
        </pre>
      ) : null}
      {result?.kind === 'test' ? (
        <div data-result="test">
          <p>
            {result.r.flows} flows replayed; {result.r.changed.length === 0 ? 'no verdict would change.' : `${result.r.changed.reduce((n, g) => n + g.count, 0)} would change:`}
          </p>
          <ul>
            {result.r.changed.map((g) => (
              <li>
                {g.source} → {g.destination}
                {g.detail ? ` (${g.detail})` : ''}: {g.from} → {g.to} ×{g.count} ({g.reason}
                {g.policy ? `, ${g.policy}` : ''})
              </li>
            ))}
            {Object.entries(result.r.undetermined).map(([why, n]) => (
              <li>
                undetermined: {why} ×{n}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      {result?.kind === 'apply' ? (
        <p data-result="apply">
          {result.r.applied ? `applied: policy version ${result.r.version}` : 'nothing changed'} ({result.r.changes.map((c) => `${c.op} ${c.kind} ${c.namespace}/${c.name}`).join(', ')})
        </p>
      ) : null}
    </section>
  );
}
