/**
 * The collector's policies (standalone mode): read from `--policy-dir`, validated whole, and
 * pushed to every agent as a numbered version — at hello and on every change. A change that does
 * not validate is logged with every problem and not pushed: agents keep the last good version.
 */
import { describeCause, isPalisadeError } from '../common/errors';
import type { Logger } from '../common/log';
import { encodeMessage } from '../common/mesh-protocol';
import { compilePolicyFiles } from '../common/policy';
import { readPolicyDir, watchPolicyDir, type PolicyFile } from '../common/policy-files';

export class CollectorPolicies {
  private files: PolicyFile[] = [];
  private version = 0;
  private encoded: string | undefined;
  private stop: (() => void) | undefined;
  private readonly log: Logger;

  constructor(
    private readonly dir: string,
    log: Logger,
    private readonly onChange: (frame: string) => void,
  ) {
    this.log = log.child({ component: 'policies' });
  }

  /** Throws PALISADE_ERR_POLICY_INVALID (every problem listed) when the directory does not validate. */
  start(): void {
    const files = readPolicyDir(this.dir);
    compilePolicyFiles(files);
    this.set(files);
    this.stop = watchPolicyDir(this.dir, files, {
      onFiles: (next) => {
        try {
          compilePolicyFiles(next);
        } catch (err) {
          if (!isPalisadeError(err)) throw err;
          const problems = (err as { problems?: readonly string[] }).problems ?? [err.message];
          this.log.error({ event: 'policy-rejected', problems }, `policy change rejected; agents keep version ${this.version}`);
          return;
        }
        this.set(next);
        this.onChange(this.frame()!);
      },
      onError: (err) => this.log.error({ dir: this.dir, error: describeCause(err) }, 'policy directory unreadable'),
    });
  }

  /** The current version as a `policies` frame, for a session that just said hello. */
  frame(): string | undefined {
    return this.encoded;
  }

  close(): void {
    this.stop?.();
  }

  private set(files: PolicyFile[]): void {
    this.files = files;
    this.version += 1;
    // Agents see file names, not the collector's paths.
    const shipped = this.files.map((f) => ({ source: f.source.slice(this.dir.length).replace(/^\/+/, ''), text: f.text }));
    this.encoded = encodeMessage({ type: 'policies', version: this.version, files: shipped });
    this.log.info({ event: 'policy-version', version: this.version, files: shipped.map((f) => f.source) }, 'policy version ready');
  }
}
