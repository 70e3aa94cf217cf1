/**
 * Finding a running pod's network namespace without a CNI call (a pod that was already running
 * when the agent first started on the node): every process's network namespace is
 * `/proc/<pid>/ns/net`, and `/proc/<pid>/net/fib_trie` lists the addresses local to that
 * namespace, read without entering it. A pod's IP found in exactly one namespace other than the
 * agent's own names that namespace; an IP found in several is ambiguous and never guessed.
 */
import * as fsp from 'node:fs/promises';
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

/** Processes looked at together: their stats and reads run on libuv's pool, the loop stays free. */
const CHUNK = 32;

/**
 * Every local IPv4 address of every network namespace with a process in it, but ours. Async, in
 * chunks of CHUNK processes, so a node with thousands of processes does not stall the proxy
 * (the scan runs when the agent reconciles, its listeners already serving).
 */
export async function scanProcNetns(procRoot = '/proc'): Promise<Map<string, NetnsCandidate>> {
  const byIp = new Map<string, NetnsCandidate>();
  const seen = new Set<number>();
  const own = await inodeOf(path.join(procRoot, 'self', 'ns', 'net'));
  if (own !== undefined) seen.add(own);
  let entries: string[];
  try {
    entries = await fsp.readdir(procRoot);
  } catch {
    return byIp;
  }
  const pids = entries.filter((e) => /^[0-9]+$/.test(e)).map(Number).sort((a, b) => a - b);
  for (let i = 0; i < pids.length; i += CHUNK) {
    const chunk = pids.slice(i, i + CHUNK);
    const inodes = await Promise.all(chunk.map((pid) => inodeOf(path.join(procRoot, String(pid), 'ns', 'net'))));
    // In pid order: a namespace is named by its lowest pid.
    const fresh: number[] = [];
    chunk.forEach((pid, j) => {
      const ino = inodes[j];
      if (ino === undefined || seen.has(ino)) return;
      seen.add(ino);
      fresh.push(pid);
    });
    const texts = await Promise.all(
      fresh.map((pid) => fsp.readFile(path.join(procRoot, String(pid), 'net', 'fib_trie'), 'utf8').catch(() => undefined)), // exited, or not ours to read
    );
    fresh.forEach((pid, j) => {
      const text = texts[j];
      if (text === undefined) return;
      const netns = path.join(procRoot, String(pid), 'ns', 'net');
      for (const ip of localAddressesOfFibTrie(text)) {
        const known = byIp.get(ip);
        if (known) known.ambiguous = true;
        else byIp.set(ip, { netns, ambiguous: false });
      }
    });
  }
  return byIp;
}

async function inodeOf(p: string): Promise<number | undefined> {
  try {
    return (await fsp.stat(p)).ino;
  } catch {
    return undefined;
  }
}
