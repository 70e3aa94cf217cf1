/**
 * The agent's hosts file (`--hosts-file`, /etc/hosts format): names the DNS proxy answers itself,
 * before asking upstream (the demo's external names live there). Read at start; changes are
 * picked up by a stat poll once a second, off the query path. An unreadable file answers nothing
 * (one warning); a bad line is skipped (one warning naming the lines).
 */
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import { errorCode } from '../../common/errors';
import type { Logger } from '../../common/log';

/** Parse /etc/hosts text into name → addresses. Bad lines are returned, not thrown. */
export function parseHosts(text: string): { names: Map<string, string[]>; bad: number[] } {
  const names = new Map<string, string[]>();
  const bad: number[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const [ip, ...hosts] = line.split(/\s+/);
    if (!ip || !isIP(ip) || hosts.length === 0) {
      bad.push(i + 1);
      return;
    }
    for (const h of hosts) {
      const name = h.toLowerCase().replace(/\.$/, '');
      const list = names.get(name) ?? [];
      if (!list.includes(ip)) list.push(ip);
      names.set(name, list);
    }
  });
  return { names, bad };
}

const POLL_MS = 1000;

/** What says a file changed: a new inode (replaced by rename), size or modification time. */
function stamp(st: fs.Stats | undefined): string {
  return st ? `${st.ino}/${st.size}/${st.mtimeMs}` : 'absent';
}

export class HostsFile {
  private names = new Map<string, string[]>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private loaded = '';
  private polling = false;

  constructor(
    private readonly file: string,
    log: Logger,
  ) {
    this.log = log.child({ component: 'hosts-file' });
  }

  /** Read the file now, then follow its changes. */
  start(): void {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(this.file);
    } catch {
      st = undefined;
    }
    this.load(stamp(st), () => fs.readFileSync(this.file, 'utf8'));
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
  }

  /** The addresses of a lowercase name without a trailing dot; undefined when the file does not name it. */
  lookup(name: string): string[] | undefined {
    return this.names.get(name);
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const st = await fs.promises.stat(this.file).catch(() => undefined);
      const now = stamp(st);
      if (now === this.loaded) return;
      const text = await fs.promises.readFile(this.file, 'utf8').then(
        (t) => () => t,
        (err: unknown) => () => {
          throw err;
        },
      );
      this.load(now, text);
    } finally {
      this.polling = false;
    }
  }

  private load(stamped: string, read: () => string): void {
    this.loaded = stamped;
    let text: string;
    try {
      text = read();
    } catch (err) {
      this.log.warn({ file: this.file, error: errorCode(err) }, 'hosts file unreadable; its names are not answered');
      this.names = new Map();
      return;
    }
    const { names, bad } = parseHosts(text);
    if (bad.length) this.log.warn({ file: this.file, lines: bad }, 'hosts file lines ignored (want "IP name…")');
    this.names = names;
    this.log.info({ file: this.file, names: names.size }, 'hosts file loaded');
  }
}
