/**
 * Proof before identity, the decisions: may a node join, is a node certificate still one the
 * collector stands behind, may a new session take a node over. Pure functions over the node
 * records (node-records.ts keeps them in `<data>/nodes.json`); each answers undefined (yes) or
 * one phrase saying why not, safe to log and to send back.
 *
 * A node joins once, with a token bound to its name; the collector records the certificate it
 * issued (serial and the SHA-256 of its public key) and every renewal after it. A node
 * certificate is accepted only while it is one of those and not revoked, so a second join, a
 * certificate the records do not know, and a revoked node are all refused at the TLS/session
 * layer, before any message.
 */
import type { NodeBinding } from './node-binding';

/** One certificate issued to a node: at join, or a renewal over its session. */
export interface NodeKey {
  /** Hex, as node:crypto's X509Certificate writes it. */
  serial: string;
  /** SHA-256 (hex) of the certificate's SubjectPublicKeyInfo (DER): the node key. */
  spkiSha256: string;
  issuedAt: string;
  notAfter: string;
}

export interface NodeRecord extends NodeBinding {
  joinedAt: string;
  /** The join token's id (never its secret). */
  tokenId: string;
  /** Oldest first. */
  keys: NodeKey[];
}

export interface RevokedCert {
  node: string;
  serial: string;
  spkiSha256: string;
  notAfter: string;
  revokedAt: string;
}

export interface NodesFile {
  version: 1;
  nodes: NodeRecord[];
  /** Kept until the certificate expires: the revocation list the TLS/session layer checks. */
  revoked: RevokedCert[];
}

/** The certificate a peer presented, as the records name it. */
export interface PresentedKey {
  serial: string;
  spkiSha256: string;
}

const validKeys = (r: NodeRecord | undefined, now: number): NodeKey[] => (r ? r.keys.filter((k) => Date.parse(k.notAfter) > now) : []);

/** Why `node` may not join now (with any token), or undefined. */
export function joinRefusal(record: NodeRecord | undefined, now: number): string | undefined {
  const valid = validKeys(record, now);
  if (!record || valid.length === 0) return undefined;
  const until = valid.map((k) => k.notAfter).sort().at(-1);
  return `node ${record.node} has already joined (its certificate is valid until ${until}): revoke it first (palisade collector node revoke ${record.node})`;
}

/** Why the collector no longer accepts this node certificate, or undefined. */
export function certRefusal(file: NodesFile, node: string, presented: PresentedKey, now: number): string | undefined {
  const revoked = file.revoked.find((r) => r.node === node && (r.serial === presented.serial || r.spkiSha256 === presented.spkiSha256));
  if (revoked) return `node ${node}'s certificate was revoked at ${revoked.revokedAt}`;
  const record = file.nodes.find((r) => r.node === node);
  if (!record) return `node ${node} has no join record: join it with a token created for it (palisade collector token create --node ${node})`;
  const known = validKeys(record, now).some((k) => k.serial === presented.serial && k.spkiSha256 === presented.spkiSha256);
  if (!known) return `this certificate is not one the collector issued to node ${node} at its join or a renewal`;
  return undefined;
}

/**
 * Why a new session (`incoming`) may not replace `node`'s current session (`current`), or
 * undefined. Both certificates passed `certRefusal` when their sessions opened; the new one must
 * hold the same node key, or a newer one the node renewed to (never an older one).
 */
export function takeoverRefusal(record: NodeRecord | undefined, current: PresentedKey, incoming: PresentedKey): string | undefined {
  if (incoming.spkiSha256 === current.spkiSha256) return undefined;
  const at = (k: PresentedKey): number => record?.keys.findIndex((x) => x.spkiSha256 === k.spkiSha256) ?? -1;
  const newer = at(incoming);
  if (newer < 0) return 'the new session does not hold a key of this node';
  const older = at(current);
  if (older >= 0 && newer < older) return 'the new session holds an older key of this node than the current one';
  return undefined;
}

/** What `node list` shows of a record. */
export interface NodeView extends NodeBinding {
  joinedAt: string;
  tokenId: string;
  /** The latest certificate's expiry. */
  certificateExpires: string;
  status: 'joined' | 'expired';
}

export function nodeView(r: NodeRecord, now: number): NodeView {
  const last = r.keys.map((k) => k.notAfter).sort().at(-1) ?? r.joinedAt;
  return {
    node: r.node,
    ...(r.nodeCidr === undefined ? {} : { nodeCidr: r.nodeCidr }),
    scopes: r.scopes,
    joinedAt: r.joinedAt,
    tokenId: r.tokenId,
    certificateExpires: last,
    status: Date.parse(last) > now ? 'joined' : 'expired',
  };
}
