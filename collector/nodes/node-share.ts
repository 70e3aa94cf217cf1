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
