/**
 * The simulated mesh's names and addresses, pure and deterministic: node i is `sim-<i>` at
 * 172.16.x.y with pod range 10.(64+i/256).(i%256).0/24; its pods cycle through that range (a
 * replaced pod gets the next free address) and through `identities` service accounts, pod p
 * running as `ns-<p % identities>/app-<p % identities>` with the labels an agent registers.
 */
import type { WorkloadRegistration } from '../../../common/mesh-protocol';

/** Pod addresses per node: .1 to .254 of its /24. */
const HOSTS = 254;
export const MAX_PODS_PER_NODE = 200;
export const MAX_NODES = 48 * 256;

export function nodeName(i: number): string {
  return `sim-${String(i).padStart(5, '0')}`;
}

export function nodeAddress(i: number): string {
  const n = i + 1;
  return `172.${16 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

export function podCidr(i: number): string {
  return `10.${64 + (i >> 8)}.${i & 255}.0/24`;
}

export function identityParts(p: number, identities: number): { namespace: string; serviceAccount: string } {
  const j = p % identities;
  return { namespace: `ns-${j}`, serviceAccount: `app-${j}` };
}

export function identityUri(p: number, identities: number): string {
  const { namespace, serviceAccount } = identityParts(p, identities);
  return `spiffe://cluster.local/ns/${namespace}/sa/${serviceAccount}`;
}

/**
 * One node's pods: `serial` numbers pods ever started on the node (names never repeat), `slot` is
 * where its address comes from; replacing a pod takes the next serial and the next free slot.
 */
export class NodePods {
  private serial = 0;
  private nextSlot = 0;
  private readonly pods: Array<{ serial: number; slot: number }> = [];

  constructor(
    readonly index: number,
    count: number,
    private readonly identities: number,
  ) {
    if (count > MAX_PODS_PER_NODE) throw new RangeError(`at most ${MAX_PODS_PER_NODE} pods per node`);
    for (let p = 0; p < count; p++) this.pods.push({ serial: this.serial++, slot: this.takeSlot() });
  }

  get count(): number {
    return this.pods.length;
  }

  /** Replace the pod at `position` by a new one; returns the new pod's address. */
  replace(position: number): string {
    const old = this.pods[position]!;
    this.pods[position] = { serial: this.serial++, slot: this.takeSlot(old.slot) };
    return this.ip(this.pods[position]!.slot);
  }

  registrations(): WorkloadRegistration[] {
    return this.pods.map(({ serial, slot }, position) => {
      const name = `p-${this.index}-${serial}`;
      const { namespace, serviceAccount } = identityParts(position, this.identities);
      return { name, namespace, serviceAccount, ip: this.ip(slot), labels: { app: serviceAccount, 'palisade.dev/workload': name } };
    });
  }

  ipAt(position: number): string {
    return this.ip(this.pods[position]!.slot);
  }

  private ip(slot: number): string {
    return `10.${64 + (this.index >> 8)}.${this.index & 255}.${slot + 1}`;
  }

  /** The next slot after the last one taken that no pod holds (`freed` is being given up). */
  private takeSlot(freed?: number): number {
    const used = new Set(this.pods.map((p) => p.slot));
    if (freed !== undefined) used.delete(freed);
    for (let k = 0; k < HOSTS; k++) {
      const slot = (this.nextSlot + k) % HOSTS;
      if (!used.has(slot) && slot !== freed) {
        this.nextSlot = (slot + 1) % HOSTS;
        return slot;
      }
    }
    throw new RangeError('no free pod address on the node');
  }
}
