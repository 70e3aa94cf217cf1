/**
 * Policy documents as files: what a policy directory holds (agent `--policy-dir`, collector
 * `--policy-dir`) and what the collector pushes to agents. Compilation happens elsewhere
 * (common/policy); this only reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeCause, PalisadeError } from './errors';

export interface PolicyFile {
  /** where the text came from, used in every problem line (`file:line: …`) */
  source: string;
  text: string;
}

/** A policy file larger than this is refused rather than read. */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024;
const POLICY_FILE = /\.(ya?ml|json)$/i;

/**
 * Every `*.yaml`, `*.yml` and `*.json` directly in `dir`, by name. Hidden entries are skipped
 * (a Kubernetes ConfigMap volume keeps its real files under `..data/` and links them).
 */
export function readPolicyDir(dir: string): PolicyFile[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `cannot read policy directory ${dir}: ${describeCause(err)}`, { cause: err });
  }
  const files: PolicyFile[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.') || !POLICY_FILE.test(name)) continue;
    const file = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      continue; // removed between readdir and stat
    }
    if (!st.isFile()) continue;
    if (st.size > MAX_POLICY_FILE_BYTES) {
      throw new PalisadeError('PALISADE_ERR_POLICY_INVALID', `${file}: ${st.size} bytes is over the ${MAX_POLICY_FILE_BYTES}-byte limit for a policy file`);
    }
    try {
      files.push({ source: file, text: fs.readFileSync(file, 'utf8') });
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `cannot read policy file ${file}: ${describeCause(err)}`, { cause: err });
    }
  }
  return files;
}

/**
 * Watch `dir` and call `onFiles` with its policy files whenever they change (debounced: editors
 * and ConfigMap updates write in several steps). Unchanged content is not reported twice.
 * Returns a function that stops watching.
 */
export function watchPolicyDir(
  dir: string,
  initial: PolicyFile[],
  handlers: { onFiles(files: PolicyFile[]): void; onError(err: unknown): void },
  debounceMs = 50,
): () => void {
  let last = fingerprint(initial);
  let timer: NodeJS.Timeout | undefined;
  const reload = (): void => {
    timer = undefined;
    let files: PolicyFile[];
    try {
      files = readPolicyDir(dir);
    } catch (err) {
      handlers.onError(err);
      return;
    }
    const fp = fingerprint(files);
    if (fp === last) return;
    last = fp;
    handlers.onFiles(files);
  };
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(dir, { persistent: false }, () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(reload, debounceMs);
    });
    watcher.on('error', (err) => handlers.onError(err));
  } catch (err) {
    handlers.onError(err);
  }
  return () => {
    watcher?.close();
    if (timer) clearTimeout(timer);
  };
}

function fingerprint(files: PolicyFile[]): string {
  return files.map((f) => `${f.source}\0${f.text}`).join('\0\0');
}
