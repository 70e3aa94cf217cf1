/**
 * The registry's recent changes, by version, each kept as the encoded `registry-delta` frame that
 * was pushed (encoded once, the same text for every agent). Bounded by entries and by bytes: the
 * oldest go first. `next` gives an agent that is behind one delta from its version — the chunk
 * to the next publication when it stands at one, else as far as MERGE_BYTES and
 * MAX_DELTA_CHANGES allow (the changes of each, in order) — or undefined when the log no longer
 * reaches back that far and it needs a snapshot instead: one frame to encrypt and send instead of
 * one per change (a pod churn at 1,000 pods/s).
 */
import { encodeMessage, MAX_DELTA_CHANGES, type RegistryDelta } from '../common/mesh-protocol';
import { SharedFrame } from './shared-frame';

/** A merged delta holds the changes of consecutive deltas up to about this many bytes. */
export const MERGE_BYTES = 256 * 1024;
/** Merged frames kept, for the other sessions at the same position. */
const MERGED_KEPT = 16;
/** Chunk frames kept (a publication every 100 ms: about 25 s of them). */
const CHUNKS_KEPT = 256;
/**
 * Deltas kept by default. A pod churn of 1,000 changes/s must leave an agent that is a few
 * seconds behind in reach of deltas (a snapshot at 100,000 workloads is 24 MB, a change ~300 B):
 * 65,536 is about a minute of it, and the byte bound (16 MiB) usually comes first.
 */
const MAX_ENTRIES = 65_536;

export interface RegistryLogLimits {
  /** Deltas kept (default MAX_ENTRIES). */
  maxEntries?: number;
  /** Encoded bytes kept (default 16 MiB). */
  maxBytes?: number;
}

interface Entry {
  fromVersion: number;
  toVersion: number;
  frame: string;
  bytes: number;
  /** Bytes appended before this entry since the log was last cleared. */
  before: number;
  epoch: string;
  /** The JSON of its changes without the brackets, and how many. */
  changes: string;
  count: number;
  /** The frame as UTF-8 bytes (and deflated), made when it is first sent alone (then shared by every session). */
  shared?: SharedFrame;
}

export class RegistryLog {
  private readonly entries: Entry[] = [];
  /** Index of the oldest live entry (entries before it were dropped; compacted now and then). */
  private head = 0;
  private bytes = 0;
  /** Bytes appended since the log was last cleared (kept or not). */
  private appended = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  /** Merged frames made lately, by `from-to` (oldest first), as the bytes every session at that position sends. */
  private readonly merged = new Map<string, SharedFrame>();
  /**
   * The versions the log was sealed at (each publication to the sessions: `seal`), ascending. The
   * deltas between two seals travel as one frame (a chunk), the same for every session that stands
   * at the first: a session behind gets the chunks after it one by one — each made and deflated
   * once — instead of a merge from its own position that no other session shares.
   */
  private seals: number[] = [];
  /** Chunk frames made lately, by the seal they start at (oldest first). */
  private readonly chunks = new Map<number, { toVersion: number; frame: SharedFrame }>();

  constructor(limits: RegistryLogLimits = {}) {
    this.maxEntries = limits.maxEntries ?? MAX_ENTRIES;
    this.maxBytes = limits.maxBytes ?? 16 * 1024 * 1024;
  }

  /** Keep `delta` (it must follow the newest one kept); returns its frame. */
  append(delta: RegistryDelta): string {
    const frame = encodeMessage({ type: 'registry-delta', ...delta });
    const last = this.entries[this.entries.length - 1];
    if (last && this.head < this.entries.length && last.toVersion !== delta.fromVersion) this.clear();
    const bytes = Buffer.byteLength(frame);
    const changes = changesText(frame);
    this.entries.push({ fromVersion: delta.fromVersion, toVersion: delta.toVersion, frame, bytes, before: this.appended, epoch: delta.epoch, changes, count: delta.changes.length });
    this.bytes += bytes;
    this.appended += bytes;
    while (this.entries.length - this.head > this.maxEntries || (this.bytes > this.maxBytes && this.entries.length - this.head > 1)) {
      this.bytes -= this.entries[this.head]!.bytes;
      this.head += 1;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    return frame;
  }

  /**
   * The one frame that takes a registry at `version` towards `current` — the delta after it, or
   * those after it merged into one as far as MERGE_BYTES and MAX_DELTA_CHANGES allow; undefined when the log does not reach from
   * `version` to `current`. `upTo` (at most `current`) is as far as the frame may reach: the
   * version published to sessions (registry.ts `publish`), so that sessions at one position share one frame.
   */
  next(version: number, current: number, upTo = current): { frame: SharedFrame; toVersion: number } | undefined {
    const at = version < upTo ? this.indexFrom(version, current) : undefined;
    if (at === undefined) return undefined;
    // a session at a seal gets the chunk to the next one; any other goes as far as the next seal, to stand on one after
    const k = this.sealIndex(version);
    const nextSeal = this.seals[this.seals[k] !== undefined && this.seals[k]! <= version ? k + 1 : k];
    if (this.seals[k] === version && nextSeal !== undefined && nextSeal <= upTo) {
      const chunk = this.chunks.get(version);
      if (chunk?.toVersion === nextSeal) return chunk;
    }
    const limit = nextSeal !== undefined && nextSeal < upTo ? nextSeal : upTo;
    const first = this.entries[at]!;
    let end = at + 1;
    let bytes = first.bytes;
    let count = first.count;
    for (; end < this.entries.length && this.entries[end - 1]!.toVersion < limit; end++) {
      const e = this.entries[end]!;
      if (bytes + e.bytes > MERGE_BYTES || count + e.count > MAX_DELTA_CHANGES) break;
      bytes += e.bytes;
      count += e.count;
    }
    if (end === at + 1) return { frame: (first.shared ??= new SharedFrame(Buffer.from(first.frame))), toVersion: first.toVersion };
    const last = this.entries[end - 1]!;
    if (this.seals[k] === version && last.toVersion === nextSeal) {
      // the whole chunk fits in one frame: kept for every session at this seal
      const chunk = { toVersion: last.toVersion, frame: this.mergedFrame(at, end) };
      this.chunks.set(version, chunk);
      if (this.chunks.size > CHUNKS_KEPT) this.chunks.delete(this.chunks.keys().next().value!);
      return chunk;
    }
    const key = `${first.fromVersion}-${last.toVersion}`;
    let frame = this.merged.get(key);
    if (frame === undefined) {
      frame = this.mergedFrame(at, end);
      this.merged.set(key, frame);
      if (this.merged.size > MERGED_KEPT) this.merged.delete(this.merged.keys().next().value!);
    }
    return { frame, toVersion: last.toVersion };
  }

  /** One `registry-delta` with the changes of entries `at` to `end` (excluded), in order. */
  private mergedFrame(at: number, end: number): SharedFrame {
    const first = this.entries[at]!;
    const last = this.entries[end - 1]!;
    const head = encodeMessage({ type: 'registry-delta', epoch: first.epoch, fromVersion: first.fromVersion, toVersion: last.toVersion, changes: [] });
    const parts = this.entries.slice(at, end).map((e) => e.changes).filter((c) => c !== '');
    return new SharedFrame(Buffer.from(`${head.slice(0, -2)}${parts.join(',')}]}`));
  }

  /** The log is published up to `version` (registry.ts `publish`): a seal, when past the last one. */
  seal(version: number): void {
    const last = this.seals[this.seals.length - 1];
    if (last !== undefined && version <= last) return;
    this.seals.push(version);
    // seals older than the oldest entry lead nowhere
    const oldest = this.entries[this.head]?.fromVersion ?? version;
    let drop = 0;
    while (drop < this.seals.length - 1 && this.seals[drop + 1]! <= oldest) drop++;
    if (drop > 0) this.seals = this.seals.slice(drop);
  }

  /** Index of the last seal at or before `version` (0 when none is). */
  private sealIndex(version: number): number {
    let lo = 0;
    let hi = this.seals.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.seals[mid]! <= version) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The bytes of the deltas from `version` to `current` (undefined: the log does not reach from there), without merging them. */
  bytesFrom(version: number, current: number): number | undefined {
    const at = version < current ? this.indexFrom(version, current) : undefined;
    return at === undefined ? undefined : this.appended - this.entries[at]!.before;
  }

  /** Where the entry starting at `version` is, when the kept entries lead from it to `current`. */
  private indexFrom(version: number, current: number): number | undefined {
    const first = this.head;
    if (first >= this.entries.length || this.entries[first]!.fromVersion > version) return undefined;
    // versions step by one: the entry starting at `version` is at a known offset
    const at = first + (version - this.entries[first]!.fromVersion);
    if (this.entries[at]?.fromVersion !== version) return undefined;
    return this.entries[this.entries.length - 1]!.toVersion === current ? at : undefined;
  }

  get size(): number {
    return this.entries.length - this.head;
  }

  /** Forget every delta (a new epoch: none of them leads anywhere an agent of it can be). */
  clear(): void {
    this.entries.length = 0;
    this.head = 0;
    this.bytes = 0;
    this.appended = 0;
    this.merged.clear();
    this.seals = [];
    this.chunks.clear();
  }
}

/**
 * The JSON of a `registry-delta` frame's changes without the brackets, as a slice of the frame
 * (V8 keeps a slice as a view of its parent: the log holds each delta's text once, not twice).
 * `changes` is the frame's last field and its first `"changes":[` (the fields before it are an
 * epoch and numbers).
 */
function changesText(frame: string): string {
  const at = frame.indexOf('"changes":[');
  if (at < 0 || !frame.endsWith(']}')) throw new Error('registry-delta frame without its changes last');
  return frame.slice(at + '"changes":['.length, -2);
}
