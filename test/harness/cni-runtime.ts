/**
 * Plays the container runtime towards CNI plugins, the way libcni does it: each plugin binary is
 * found by its `type` on CNI_PATH and run with the CNI_* environment and its network configuration
 * on stdin. A conflist runs ADD plugin by plugin, each getting the list's `name` and `cniVersion`
 * and the previous plugin's result as `prevResult`; DEL runs in reverse and CHECK in order, both
 * with the cached ADD result as `prevResult`. Optionally inside a netns (a "node"), so that
 * plugins such as `bridge` create their host-side devices there and not in the host's netns.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { collect } from './proc';

/** Where Debian's containernetworking-plugins are installed. */
export const DEBIAN_CNI_DIR = '/usr/lib/cni';

/** dist/cni/palisade-cni, built by `make build` (the `cni` target). */
export function palisadeCniPath(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'dist', 'cni', 'palisade-cni');
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`dist/cni/palisade-cni not found above ${__dirname}; run make build`);
  }
}

export interface CniSandboxSpec {
  containerId: string;
  /** CNI_NETNS; may be omitted (e.g. to test a runtime that forgot it). */
  netns?: string;
  ifName?: string;
  /** CNI_ARGS as a string, or key/value pairs joined with ';'. */
  args?: string | Record<string, string>;
}

export interface PluginRun {
  /** Exit status (null when killed). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
  /** stdout parsed as JSON, when it is JSON. */
  json: unknown;
}

export interface RunPluginOptions {
  /** Run inside this netns (`nsenter --net=`), as a runtime inside a node would. */
  netns?: string;
  /** CNI_PATH (default: palisade-cni's folder, then Debian's). */
  cniPath?: string[];
  timeoutMs?: number;
  /** Extra or overriding environment; a key set to undefined is removed. */
  env?: Record<string, string | undefined>;
}

export function cniArgs(args: CniSandboxSpec['args']): string {
  if (args === undefined) return '';
  if (typeof args === 'string') return args;
  return Object.entries(args)
    .map(([k, v]) => `${k}=${v}`)
    .join(';');
}

/** Run one plugin binary once: `command` with the sandbox's environment and `stdin`. */
export async function runPlugin(
  binary: string,
  command: string,
  sandbox: CniSandboxSpec,
  stdin: string | Buffer,
  opts: RunPluginOptions = {},
): Promise<PluginRun> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: sandbox.containerId,
    CNI_IFNAME: sandbox.ifName ?? 'eth0',
    CNI_ARGS: cniArgs(sandbox.args),
    CNI_PATH: (opts.cniPath ?? [path.dirname(palisadeCniPath()), DEBIAN_CNI_DIR]).join(':'),
  };
  if (sandbox.netns !== undefined) env.CNI_NETNS = sandbox.netns;
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const cmd = opts.netns ? 'nsenter' : binary;
  const args = opts.netns ? [`--net=${opts.netns}`, '--', binary] : [];
  const started = process.hrtime.bigint();
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const r = await collect(child, { input: stdin, timeoutMs: opts.timeoutMs ?? 15_000 });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, ms, json };
}

/** A network configuration list, as in /etc/cni/net.d/*.conflist. */
export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Array<Record<string, unknown> & { type: string }>;
}

export interface ChainStep {
  type: string;
  run: PluginRun;
}

export interface ChainResult {
  /** True when every plugin succeeded. */
  ok: boolean;
  /** The last plugin's result (ADD), or undefined. */
  result: unknown;
  steps: ChainStep[];
}

/** Runs a conflist the way libcni does; the cached ADD result feeds CHECK and DEL. */
export class CniChain {
  private readonly cache = new Map<string, unknown>();

  constructor(
    readonly conflist: Conflist,
    private readonly opts: RunPluginOptions = {},
  ) {}

  /** Cache an ADD result recorded by another process (libcni keeps it on disk, so another process can DEL with it). */
  remember(containerId: string, result: unknown): void {
    this.cache.set(containerId, result);
  }

  async add(sandbox: CniSandboxSpec): Promise<ChainResult> {
    const steps: ChainStep[] = [];
    let prev: unknown;
    for (const plugin of this.conflist.plugins) {
      const run = await this.invoke(plugin, 'ADD', sandbox, prev);
      steps.push({ type: plugin.type, run });
      if (run.code !== 0) return { ok: false, result: undefined, steps };
      prev = run.json;
    }
    this.cache.set(sandbox.containerId, prev);
    return { ok: true, result: prev, steps };
  }

  async check(sandbox: CniSandboxSpec): Promise<ChainResult> {
    const prev = this.cache.get(sandbox.containerId);
    const steps: ChainStep[] = [];
    for (const plugin of this.conflist.plugins) {
      const run = await this.invoke(plugin, 'CHECK', sandbox, prev);
      steps.push({ type: plugin.type, run });
      if (run.code !== 0) return { ok: false, result: undefined, steps };
    }
    return { ok: true, result: undefined, steps };
  }

  /** DEL in reverse order; like libcni it goes on through every plugin and reports the first failure. */
  async del(sandbox: CniSandboxSpec): Promise<ChainResult> {
    const prev = this.cache.get(sandbox.containerId);
    const steps: ChainStep[] = [];
    for (const plugin of [...this.conflist.plugins].reverse()) {
      steps.push({ type: plugin.type, run: await this.invoke(plugin, 'DEL', sandbox, prev) });
    }
    this.cache.delete(sandbox.containerId);
    return { ok: steps.every((s) => s.run.code === 0), result: undefined, steps };
  }

  private invoke(plugin: Conflist['plugins'][number], command: string, sandbox: CniSandboxSpec, prev: unknown): Promise<PluginRun> {
    const config: Record<string, unknown> = { ...plugin, name: this.conflist.name, cniVersion: this.conflist.cniVersion };
    if (prev !== undefined) config.prevResult = prev;
    const dirs = this.opts.cniPath ?? [path.dirname(palisadeCniPath()), DEBIAN_CNI_DIR];
    const binary = dirs.map((d) => path.join(d, plugin.type)).find((p) => fs.existsSync(p));
    if (!binary) throw new Error(`CNI plugin ${plugin.type} not found on ${dirs.join(':')}`);
    return runPlugin(binary, command, sandbox, JSON.stringify(config), { ...this.opts, cniPath: dirs });
  }
}
