/**
 * Finding a running pod's network namespace without a CNI call (a pod that was already running
 * when the agent first started on the node): every process's network namespace is
 * `/proc/<pid>/ns/net`, and `/proc/<pid>/net/fib_trie` lists the addresses local to that
 * namespace, read without entering it. A pod's IP found in exactly one namespace other than the
 * agent's own names that namespace; an IP found in several is ambiguous and never guessed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The IPv4 addresses a fib_trie dump says are local (`/32 host LOCAL`), loopback left out. */
export function localAddressesOfFibTrie(text: string): string[] {
  const out = new Set<string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    const leaf = /\|--\s+(\d{1,3}(?:\.\d{1,3}){3})\s*$/.exec(line);
    if (leaf) {
      last = leaf[1];
      continue;
    }
    if (last !== undefined && /^\s+\/32 host LOCAL\s*$/.test(line) && !last.startsWith('127.')) out.add(last);
    if (!/^\s+\/\d+ /.test(line)) last = undefined;
  }
  return [...out];
}

export interface NetnsCandidate {
  /** `/proc/<pid>/ns/net` of the lowest pid in the namespace. */
  netns: string;
  /** More than one namespace has this address: not usable. */
  ambiguous: boolean;
}

/** Every local IPv4 address of every network namespace with a process in it, but ours. */
export function scanProcNetns(procRoot = '/proc'): Map<string, NetnsCandidate> {
  const byIp = new Map<string, NetnsCandidate>();
  const seen = new Set<number>();
  const own = inodeOf(path.join(procRoot, 'self', 'ns', 'net'));
  if (own !== undefined) seen.add(own);
  let entries: string[];
  try {
    entries = fs.readdirSync(procRoot);
  } catch {
    return byIp;
  }
  const pids = entries.filter((e) => /^[0-9]+$/.test(e)).map(Number).sort((a, b) => a - b);
  for (const pid of pids) {
    const netns = path.join(procRoot, String(pid), 'ns', 'net');
    const ino = inodeOf(netns);
    if (ino === undefined || seen.has(ino)) continue;
    seen.add(ino);
    let text: string;
    try {
      text = fs.readFileSync(path.join(procRoot, String(pid), 'net', 'fib_trie'), 'utf8');
    } catch {
      continue; // the process exited, or we may not read it
    }
    for (const ip of localAddressesOfFibTrie(text)) {
      const known = byIp.get(ip);
      if (known) known.ambiguous = true;
      else byIp.set(ip, { netns, ambiguous: false });
    }
  }
  return byIp;
}

function inodeOf(p: string): number | undefined {
  try {
    return fs.statSync(p).ino;
  } catch {
    return undefined;
  }
}
