/**
 * One node's part of the node records as collector replicas share it (a PalisadeNode object's
 * `spec`: collector/kubernetes/node-records-share.ts), and how a share from another replica
 * merges into this replica's records (pure, table-tested). A share only grows until its
 * certificates expire: certificates issued (join, renewals) and certificates revoked are both
 * unions, and a certificate revoked anywhere leaves the record everywhere — so replicas that hear
 * each other's shares in any order, any number of times, end with the same records. A record
 * whose every certificate was revoked is gone (the node may join again with a new token); the
 * binding and token id are the latest join's.
 */
import { isRecord } from '../../common/record';
import { canonicalJson } from '../audit/audit-log';
import type { NodeKey, NodeRecord, NodesFile, RevokedCert } from './node-trust';

export interface NodeShare {
  record?: NodeRecord;
  revoked: RevokedCert[];
}

/** `node`'s share of `file`. */
export function shareOf(file: NodesFile, node: string): NodeShare {
  const record = file.nodes.find((r) => r.node === node);
  return { ...(record ? { record } : {}), revoked: file.revoked.filter((r) => r.node === node) };
}

/** Every node `file` has a record or a revocation of. */
export function nodesOf(file: NodesFile): Set<string> {
  return new Set([...file.nodes.map((r) => r.node), ...file.revoked.map((r) => r.node)]);
}

const keyId = (k: { serial: string; spkiSha256: string }): string => `${k.serial}/${k.spkiSha256}`;

/** The merge of two shares of `node` (`ours` wins a tie). */
export function mergeShares(node: string, ours: NodeShare, theirs: NodeShare): NodeShare {
  const revoked = new Map<string, RevokedCert>();
  for (const r of [...ours.revoked, ...theirs.revoked]) if (r.node === node && !revoked.has(keyId(r))) revoked.set(keyId(r), r);
  const latest = !ours.record ? theirs.record : !theirs.record || theirs.record.joinedAt <= ours.record.joinedAt ? ours.record : theirs.record;
  let record: NodeRecord | undefined;
  if (latest) {
    const keys = new Map<string, NodeKey>();
    for (const k of [...(ours.record?.keys ?? []), ...(theirs.record?.keys ?? [])]) if (!revoked.has(keyId(k)) && !keys.has(keyId(k))) keys.set(keyId(k), k);
    const sorted = [...keys.values()].sort((a, b) => (a.issuedAt < b.issuedAt ? -1 : a.issuedAt > b.issuedAt ? 1 : 0));
    if (sorted.length > 0) record = { ...latest, node, keys: sorted };
  }
  return { ...(record ? { record } : {}), revoked: [...revoked.values()] };
}

/** Put `share` (merged with what `file` has) in `file`; true when the file changed. */
export function mergeInto(file: NodesFile, node: string, share: NodeShare): boolean {
  const ours = shareOf(file, node);
  const merged = mergeShares(node, ours, share);
  if (canonicalJson(merged) === canonicalJson(ours)) return false;
  file.nodes = [...file.nodes.filter((r) => r.node !== node), ...(merged.record ? [merged.record] : [])];
  file.revoked = [...file.revoked.filter((r) => r.node !== node), ...merged.revoked];
  return true;
}

const ISO = (v: unknown): v is string => typeof v === 'string' && v.length <= 40 && !Number.isNaN(Date.parse(v));
const HEX64 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
const SERIAL = (v: unknown): v is string => typeof v === 'string' && /^[0-9A-Fa-f]{1,128}$/.test(v);
const MAX_KEYS = 1000;

/**
 * A PalisadeNode object's `spec` as `node`'s share, or one line saying why it is not one (the
 * object is then ignored: nothing merged). Whoever may write these objects decides which node
 * certificates every replica accepts, so their shape is checked here, once, at the boundary.
 */
export function checkShare(node: string, spec: unknown): NodeShare | string {
  if (!isRecord(spec)) return 'spec: must be an object';
  const revoked = spec.revoked ?? [];
  if (!Array.isArray(revoked) || revoked.length > MAX_KEYS) return `spec.revoked: must be a list of at most ${MAX_KEYS}`;
  for (const [i, r] of revoked.entries()) {
    if (!isRecord(r) || r.node !== node || !SERIAL(r.serial) || !HEX64(r.spkiSha256) || !ISO(r.notAfter) || !ISO(r.revokedAt)) return `spec.revoked[${i}]: not a revoked certificate of node ${node}`;
  }
  if (spec.record === undefined) return { revoked: revoked as RevokedCert[] };
  const r = spec.record;
  if (!isRecord(r) || r.node !== node) return `spec.record: must be the record of node ${node}`;
  if (!ISO(r.joinedAt) || typeof r.tokenId !== 'string' || r.tokenId.length > 64) return 'spec.record: joinedAt and tokenId';
  if (!Array.isArray(r.scopes) || r.scopes.length > 100 || !r.scopes.every((s) => typeof s === 'string' && s.length <= 253)) return 'spec.record.scopes: must be a list of scopes';
  if (r.nodeCidr !== undefined && (typeof r.nodeCidr !== 'string' || r.nodeCidr.length > 18)) return 'spec.record.nodeCidr: must be an IPv4 range';
  if (!Array.isArray(r.keys) || r.keys.length === 0 || r.keys.length > MAX_KEYS) return `spec.record.keys: must be a list of 1 to ${MAX_KEYS}`;
  for (const [i, k] of r.keys.entries()) {
    if (!isRecord(k) || !SERIAL(k.serial) || !HEX64(k.spkiSha256) || !ISO(k.issuedAt) || !ISO(k.notAfter)) return `spec.record.keys[${i}]: not a certificate`;
  }
  return { record: r as unknown as NodeRecord, revoked: revoked as RevokedCert[] };
}
