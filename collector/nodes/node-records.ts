/**
 * The node records, `<data>/nodes.json` (0600, changed under a lock: locked-json-file.ts): every
 * node that joined, with its binding and the certificates issued to it, and the revocation list.
 * The running collector writes it at a join and a node-certificate renewal; the offline
 * `palisade collector node revoke` writes it too, and the collector notices within a second
 * (`watch`). Decisions are node-trust.ts's; this keeps the file and caches it.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { PalisadeError } from '../../common/errors';
import { isRecord } from '../../common/record';
import { LockedJsonFile } from '../locked-json-file';
import type { NodeBinding } from './node-binding';
import { mergeInto, type NodeShare } from './node-share';
import { certRefusal, joinRefusal, nodeView, type NodeKey, type NodeRecord, type NodesFile, type NodeView, type PresentedKey, type RevokedCert } from './node-trust';

export const NODES_FILE = 'nodes.json';

/** The key of a certificate (PEM or parsed) as node records name it. */
export function presentedKey(cert: string | X509Certificate): PresentedKey {
  const x509 = typeof cert === 'string' ? new X509Certificate(cert) : cert;
  const spki = x509.publicKey.export({ type: 'spki', format: 'der' });
  return { serial: x509.serialNumber, spkiSha256: createHash('sha256').update(spki).digest('hex') };
}

function issuedKey(certPem: string, now: Date): NodeKey {
  const x509 = new X509Certificate(certPem);
  return { ...presentedKey(x509), issuedAt: now.toISOString(), notAfter: new Date(x509.validTo).toISOString() };
}

function checkFile(parsed: unknown): NodesFile {
  if (!isRecord(parsed) || parsed.version !== 1 || !Array.isArray(parsed.nodes) || !Array.isArray(parsed.revoked)) throw new Error('unexpected shape');
  return parsed as unknown as NodesFile;
}

export type JoinOutcome = { ok: true; certPem: string; tokenId: string; binding: NodeBinding } | { ok: false; reason: string; tokenId?: string };

export interface JoinSteps {
  /** Spend the join token for this node: its binding, or why not (nothing is spent then). */
  consumeToken(): { ok: true; id: string; binding: NodeBinding } | { ok: false; id?: string; reason: string };
  /** Issue the node certificate; throws when it cannot (the token is spent, nothing is recorded). */
  issue(binding: NodeBinding): string;
}

export class NodeRecords {
  private readonly store: LockedJsonFile<NodesFile>;
  private cached: { stamp: string; file: NodesFile } | undefined;
  /** Told which node this process changed (join, renewal, revocation): what the replicas' share publishes. */
  private readonly written = new Set<(node: string) => void>();

  constructor(dataDir: string) {
    this.store = new LockedJsonFile(dataDir, NODES_FILE, { empty: () => ({ version: 1, nodes: [], revoked: [] }), check: checkFile, what: 'node records' });
  }

  /** The records as on disk now (re-read only when the file changed). */
  current(): NodesFile {
    const stamp = this.store.stamp();
    if (this.cached?.stamp !== stamp) this.cached = { stamp, file: this.store.read() };
    return this.cached.file;
  }

  record(node: string): NodeRecord | undefined {
    return this.current().nodes.find((r) => r.node === node);
  }

  /** Why the collector refuses this node certificate now, or undefined. */
  certRefusal(node: string, presented: PresentedKey, now = Date.now()): string | undefined {
    return certRefusal(this.current(), node, presented, now);
  }

  /**
   * Join `node`: refused while it has a valid certificate; otherwise the token is spent, the
   * certificate issued and recorded — all under the lock, so two joins cannot both win.
   */
  join(node: string, steps: JoinSteps, now = new Date()): JoinOutcome {
    let outcome: JoinOutcome = { ok: false, reason: 'not attempted' };
    this.store.update((file) => {
      const existing = file.nodes.find((r) => r.node === node);
      const refusal = joinRefusal(existing, now.getTime());
      if (refusal) {
        outcome = { ok: false, reason: refusal };
        return false;
      }
      const token = steps.consumeToken();
      if (!token.ok) {
        outcome = { ok: false, reason: token.reason, ...(token.id === undefined ? {} : { tokenId: token.id }) };
        return false;
      }
      const certPem = steps.issue(token.binding);
      const record: NodeRecord = { ...token.binding, joinedAt: now.toISOString(), tokenId: token.id, keys: [issuedKey(certPem, now)] };
      file.nodes = [...file.nodes.filter((r) => r.node !== node), record];
      prune(file, now);
      outcome = { ok: true, certPem, tokenId: token.id, binding: token.binding };
      return true;
    });
    if (outcome.ok) this.wrote(node);
    return outcome;
  }

  /** A renewal the node asked for over its session: its new certificate is one of its keys from now on. */
  renewed(node: string, certPem: string, now = new Date()): void {
    this.store.update((file) => {
      const record = file.nodes.find((r) => r.node === node);
      if (!record) throw new PalisadeError('PALISADE_ERR_CSR_REFUSED', `node ${node} has no join record`);
      record.keys.push(issuedKey(certPem, now));
      prune(file, now);
    });
    this.wrote(node);
  }

  /** Merge another replica's share of `node` (./node-share.ts); true when the records changed. */
  merge(node: string, share: NodeShare): boolean {
    let changed = false;
    this.store.update((file) => (changed = mergeInto(file, node, share)));
    return changed;
  }

  /** Call `listener` with each node this process changes the records of. */
  onWrite(listener: (node: string) => void): () => void {
    this.written.add(listener);
    return () => this.written.delete(listener);
  }

  private wrote(node: string): void {
    for (const l of this.written) l(node);
  }

  /**
   * Revoke `node`: every certificate issued to it goes on the revocation list, its record goes
   * (so it can join again with a new token). Returns how many certificates were revoked.
   */
  revoke(node: string, now = new Date()): number {
    let count = 0;
    this.store.update((file) => {
      const record = file.nodes.find((r) => r.node === node);
      if (!record) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `node ${node} has not joined (palisade collector node list shows the nodes)`);
      const revoked: RevokedCert[] = record.keys.map((k) => ({ node, serial: k.serial, spkiSha256: k.spkiSha256, notAfter: k.notAfter, revokedAt: now.toISOString() }));
      count = revoked.length;
      file.revoked.push(...revoked);
      file.nodes = file.nodes.filter((r) => r.node !== node);
      prune(file, now);
    });
    this.wrote(node);
    return count;
  }

  list(now = Date.now()): NodeView[] {
    return this.current()
      .nodes.map((r) => nodeView(r, now))
      .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  /** Call `onChange` (at most once a second) whenever the file changes, whoever changed it. */
  watch(onChange: () => void): () => void {
    return this.store.watch(onChange);
  }

  /** Why `node` may not join now (it has a valid certificate), or undefined. */
  joinRefusal(node: string, now = Date.now()): string | undefined {
    return joinRefusal(this.record(node), now);
  }
}

/** Expired certificates leave the records and the revocation list (a node whose every key expired may join again). */
function prune(file: NodesFile, now: Date): void {
  const live = (notAfter: string): boolean => Date.parse(notAfter) > now.getTime();
  file.revoked = file.revoked.filter((r) => live(r.notAfter));
  for (const r of file.nodes) {
    const valid = r.keys.filter((k) => live(k.notAfter));
    if (valid.length > 0) r.keys = valid;
  }
}
