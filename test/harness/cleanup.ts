/**
 * Crash-safety: a registry of synchronous cleanup callbacks run from the process
 * 'exit' hook (and on fatal signals), plus sweepStale() for leftovers of dead runs.
 * The registry is the only module-level mutable state in the harness.
 */
import * as fs from 'fs';
import * as path from 'path';
import { cgroup2Root, removeCgroupTreeSync } from './cgroup';
import { NETNS_NAME_RE, delNetnsSync, listNetnsSync } from './netns';

export const CGROUP_NAME_RE = /^palisade-test-(\d+)-/;

const registry = new Map<number, () => void>();
let nextId = 1;
let hooksInstalled = false;

function runAll(): void {
  for (const [id, fn] of [...registry]) {
    registry.delete(id);
    try {
      fn();
    } catch {
      /* never let cleanup throw from an exit hook */
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  runAll();
  process.removeListener(sig, onSignal);
  // Preserve default behaviour (terminate) unless someone else handles the signal.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', runAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
}

/** Register a synchronous cleanup to run at process exit; returns an unregister function. */
export function registerExitCleanup(fn: () => void): () => void {
  installHooks();
  const id = nextId++;
  registry.set(id, fn);
  return () => {
    registry.delete(id);
  };
}

/** True if `pid` is a running (non-zombie) process. */
function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove netns named `palisade-<pid>-*` and cgroups `<cgroup2root>/palisade-test-<pid>-*`
 * whose <pid> is not a live process. Cgroups go first so their processes die before the
 * namespaces are released. Never throws.
 */
export function sweepStale(): void {
  try {
    const root = cgroup2Root();
    for (const name of fs.readdirSync(root)) {
      const m = CGROUP_NAME_RE.exec(name);
      if (m && !pidAlive(Number(m[1]))) removeCgroupTreeSync(path.join(root, name));
    }
  } catch {
    /* no cgroup2 or unreadable root: nothing to sweep */
  }
  for (const ns of listNetnsSync()) {
    const m = NETNS_NAME_RE.exec(ns);
    if (m && !pidAlive(Number(m[1]))) delNetnsSync(ns);
  }
}
