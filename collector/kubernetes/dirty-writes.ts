/**
 * The objects a replica must write to the API (its share of the node records, of the
 * registrations), one write at a time: `add` marks names dirty, and they are written in turn by
 * `write` once `ready` (the watch has listed, so we know each object's resourceVersion). A failed
 * write (anything but a lost race, which the watch answers) keeps its name dirty and waits
 * `retryMs` before the next round.
 */
export class DirtyWrites {
  private readonly dirty = new Set<string>();
  private writing: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  /** `write(name)`: false when it failed (retried later). */
  constructor(
    private readonly write: (name: string) => Promise<boolean>,
    private readonly ready: () => boolean,
    private readonly retryMs = 2_000,
  ) {}

  add(names: Iterable<string>): void {
    if (this.stopped) return;
    for (const n of names) this.dirty.add(n);
    if (this.writing || this.retry || !this.ready()) return;
    this.writing = this.writeAll().then((failed) => {
      this.writing = undefined;
      if (this.stopped || this.dirty.size === 0) return;
      if (!failed) return this.add([]);
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.add([]);
      }, this.retryMs);
      this.retry.unref();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.writing;
  }

  /** Write the dirty names; true when a write failed (the rest wait for a retry). */
  private async writeAll(): Promise<boolean> {
    while (this.dirty.size > 0 && !this.stopped) {
      const name = this.dirty.values().next().value!;
      this.dirty.delete(name);
      if (await this.write(name)) continue;
      this.dirty.add(name);
      return true;
    }
    return false;
  }
}
