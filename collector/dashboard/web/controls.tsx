/**
 * The bar above the map: time window, live or replay (a slider over the window's steps, with
 * play), and the filters — namespaces (several, or all), verdict, workload, protocol.
 */
import { useEffect, useState } from 'preact/hooks';
import { time } from './format';

export type WindowName = '5m' | '1h' | '24h';
export const WINDOWS: Record<WindowName, { ms: number; stepMs: number; label: string }> = {
  '5m': { ms: 5 * 60_000, stepMs: 60_000, label: 'last 5 min' },
  '1h': { ms: 3_600_000, stepMs: 5 * 60_000, label: 'last 1 h' },
  '24h': { ms: 86_400_000, stepMs: 3_600_000, label: 'last 24 h' },
};

export interface Filters {
  /** empty: every namespace */
  namespaces: string[];
  verdict: '' | 'allowed' | 'denied' | 'audit' | 'error';
  workload: string;
  protocol: '' | 'http' | 'tcp' | 'tls';
}

export interface Replay {
  /** the end of the replayed window (fixed when replay starts) */
  anchor: number;
  step: number;
  playing: boolean;
}

export interface ControlsProps {
  window: WindowName;
  onWindow(w: WindowName): void;
  filters: Filters;
  onFilters(f: Filters): void;
  namespaces: readonly string[];
  replay: Replay | undefined;
  onReplay(r: Replay | undefined): void;
  updated: number | undefined;
}

export const replaySteps = (w: WindowName): number => WINDOWS[w].ms / WINDOWS[w].stepMs;

export function Controls(props: ControlsProps) {
  const { filters: f, replay: r } = props;
  const set = (patch: Partial<Filters>): void => props.onFilters({ ...f, ...patch });
  const steps = replaySteps(props.window);
  const known = [...new Set([...props.namespaces, ...f.namespaces])].sort();
  return (
    <div class="controls">
      <label>
        Window{' '}
        <select name="window" value={props.window} onChange={(e) => props.onWindow((e.target as HTMLSelectElement).value as WindowName)}>
          {(Object.keys(WINDOWS) as WindowName[]).map((w) => (
            <option value={w}>{WINDOWS[w].label}</option>
          ))}
        </select>
      </label>
      <label title="several with Ctrl/Cmd; none selected: all">
        Namespaces{' '}
        <select
          name="namespaces"
          multiple
          size={Math.min(3, Math.max(1, known.length))}
          onChange={(e) => set({ namespaces: [...(e.target as HTMLSelectElement).selectedOptions].map((o) => o.value) })}
        >
          {known.map((ns) => (
            <option value={ns} selected={f.namespaces.includes(ns)}>
              {ns}
            </option>
          ))}
        </select>
      </label>
      {f.namespaces.length > 0 ? (
        <button type="button" class="link" onClick={() => set({ namespaces: [] })}>
          all namespaces
        </button>
      ) : null}
      <label>
        Verdict{' '}
        <select name="verdict" value={f.verdict} onChange={(e) => set({ verdict: (e.target as HTMLSelectElement).value as Filters['verdict'] })}>
          <option value="">any</option>
          <option value="allowed">allowed</option>
          <option value="denied">denied</option>
          <option value="audit">audit</option>
          <option value="error">error</option>
        </select>
      </label>
      <label>
        Workload{' '}
        <WorkloadBox value={f.workload} onCommit={(workload) => set({ workload })} />
      </label>
      <label>
        Protocol{' '}
        <select name="protocol" value={f.protocol} onChange={(e) => set({ protocol: (e.target as HTMLSelectElement).value as Filters['protocol'] })}>
          <option value="">any</option>
          <option value="http">http</option>
          <option value="tcp">tcp</option>
          <option value="tls">tls</option>
        </select>
      </label>
      <span class="spacer" />
      {r === undefined ? (
        <>
          <span class="live" data-live="true">
            ● live{props.updated !== undefined ? ` · ${time(props.updated)}` : ''}
          </span>
          <button type="button" name="replay" onClick={() => props.onReplay({ anchor: Date.now(), step: 0, playing: true })}>
            Replay window
          </button>
        </>
      ) : (
        <span class="replay">
          <button type="button" name="play" onClick={() => props.onReplay({ ...r, playing: !r.playing, step: !r.playing && r.step >= steps - 1 ? 0 : r.step })}>
            {r.playing ? 'Pause' : 'Play'}
          </button>
          <input
            name="replay-step"
            type="range"
            min={0}
            max={steps - 1}
            value={r.step}
            onInput={(e) => props.onReplay({ ...r, playing: false, step: Number((e.target as HTMLInputElement).value) })}
          />
          <span class="replay-time">
            {time(r.anchor - WINDOWS[props.window].ms + r.step * WINDOWS[props.window].stepMs)}–{time(r.anchor - WINDOWS[props.window].ms + (r.step + 1) * WINDOWS[props.window].stepMs)}
          </span>
          <button type="button" name="live" onClick={() => props.onReplay(undefined)}>
            Back to live
          </button>
        </span>
      )}
    </div>
  );
}

/**
 * The workload filter: what is typed stays in the box's own state until it is committed (change:
 * Enter or leaving the box). Bound to the filter itself, every live refresh (each second) would
 * put the committed value back into the box while someone types.
 */
function WorkloadBox(props: { value: string; onCommit(v: string): void }) {
  const [text, setText] = useState(props.value);
  useEffect(() => setText(props.value), [props.value]);
  return (
    <input
      name="workload"
      type="search"
      placeholder="ns/name or name"
      value={text}
      onInput={(e) => setText((e.target as HTMLInputElement).value)}
      onChange={(e) => props.onCommit((e.target as HTMLInputElement).value.trim())}
    />
  );
}
