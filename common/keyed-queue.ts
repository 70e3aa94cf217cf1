/** Work that must not overlap per key: each key's tasks run one at a time, in the order given. */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Run `work` after every task queued before it under `key` has settled. */
  run<T>(key: string, work: () => Promise<T> | T): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const run = previous.then(work, work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return run;
  }

  /** Keys with queued or running work. */
  get size(): number {
    return this.tails.size;
  }
}
