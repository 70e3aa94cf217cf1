/** A fixed-capacity FIFO: O(1) push and shift, no allocation after construction. */
export class RingBuffer<T> {
  private readonly items: Array<T | undefined>;
  private head = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`ring buffer capacity must be a positive integer, got ${capacity}`);
    this.items = new Array<T | undefined>(capacity).fill(undefined);
  }

  get length(): number {
    return this.size;
  }

  /** Append; when full, the oldest item makes room and is returned. */
  push(item: T): T | undefined {
    let dropped: T | undefined;
    if (this.size === this.capacity) dropped = this.shift();
    let tail = this.head + this.size;
    if (tail >= this.capacity) tail -= this.capacity;
    this.items[tail] = item;
    this.size++;
    return dropped;
  }

  /** Remove and return the oldest item. */
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = this.head + 1 === this.capacity ? 0 : this.head + 1;
    this.size--;
    return item;
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.size === 0 ? undefined : this.items[this.head];
  }
}
