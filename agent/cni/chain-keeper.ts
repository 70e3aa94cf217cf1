/**
 * Keeps palisade-cni in the node's CNI chain while the agent runs (`agent --cni-conf-dir`). A
 * cluster network plugin may rewrite its configuration file at any time (an upgrade, a restart),
 * and the rewritten file would not list palisade-cni: pods would then start without asking the
 * agent, outside the mesh. The keeper watches the configuration directory (inotify, and a slow
 * re-check in case an event is missed) and puts back the entry `palisade cni install` wrote —
 * the one it saw last — into the file the runtime uses, atomically. It never invents an entry: if
 * the chain has never had one, it says so once. Problems are logged once each; nothing throws.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file';
import { describeCause } from '../../common/errors';
import type { Logger } from '../../common/log';
import { chooseNetworkConfig, palisadeEntryOf, withPalisade, type PalisadeCniEntry } from './conflist';

export interface CniChainKeeperOptions {
  confDir: string;
  log: Logger;
  /** Coalesce bursts of directory events (default 100 ms). */
  debounceMs?: number;
  /** Re-check this often even without events (default 10 s). */
  recheckMs?: number;
}

export class CniChainKeeper {
  /** How many times the entry was put back. */
  restored = 0;
  private entry: PalisadeCniEntry | undefined;
  private watcher: fs.FSWatcher | undefined;
  private readonly interval: NodeJS.Timeout;
  private debounce: NodeJS.Timeout | undefined;
  private lastProblem: string | undefined;
  private stopped = false;

  constructor(private readonly opts: CniChainKeeperOptions) {
    this.check();
    try {
      this.watcher = fs.watch(opts.confDir, () => this.soon());
      this.watcher.on('error', (err) => this.problem(`cannot watch ${opts.confDir}: ${describeCause(err)}`));
    } catch (err) {
      this.problem(`cannot watch ${opts.confDir}: ${describeCause(err)}; re-checking every ${(opts.recheckMs ?? 10_000) / 1000} s`);
    }
    this.interval = setInterval(() => this.check(), opts.recheckMs ?? 10_000);
    this.interval.unref();
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    clearInterval(this.interval);
    if (this.debounce) clearTimeout(this.debounce);
  }

  private soon(): void {
    if (this.debounce || this.stopped) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.check();
    }, this.opts.debounceMs ?? 100);
  }

  /** Look at the file the runtime uses; put palisade-cni back if it is gone. */
  check(): void {
    if (this.stopped) return;
    const { confDir, log } = this.opts;
    try {
      const name = chooseNetworkConfig(fs.readdirSync(confDir));
      if (!name) return this.problem(`no CNI network configuration in ${confDir}: pods cannot start on this node until the network plugin writes one`);
      const file = { name, text: fs.readFileSync(path.join(confDir, name), 'utf8') };
      const present = palisadeEntryOf(file);
      if (present) {
        this.entry = present;
        this.lastProblem = undefined;
        return;
      }
      if (!this.entry) return this.problem(`palisade-cni is not in ${path.join(confDir, name)}: pods start on this node without asking the agent (run palisade cni install)`);
      const edit = withPalisade(file, this.entry);
      writeFileAtomic(path.join(confDir, edit.name), edit.text, 0o644);
      if (edit.replaces) fs.rmSync(path.join(confDir, edit.replaces), { force: true });
      this.restored++;
      this.lastProblem = undefined;
      log.warn({ event: 'cni-chain-restored', config: path.join(confDir, edit.name) }, 'palisade-cni was missing from the CNI chain (its configuration was rewritten): put back');
    } catch (err) {
      this.problem(`cannot keep palisade-cni in the CNI chain of ${confDir}: ${describeCause(err)}`);
    }
  }

  private problem(message: string): void {
    if (message === this.lastProblem) return;
    this.lastProblem = message;
    this.opts.log.error({ event: 'cni-chain' }, message);
  }
}
