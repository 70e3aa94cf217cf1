/**
 * Caps on concurrent connections, per side (outbound: this node's pods' connections; inbound:
 * HBONE streams from other nodes) and per source pod, so one pod cannot starve the node of
 * descriptors. `admit` is decided by the pure `admission` below; an admitted connection holds its
 * place until `release` (called once, when its client side closes).
 */
import type { ConnectionCaps } from './fd-budget';

export type Side = 'outbound' | 'inbound';

/** Why a connection was refused: its source pod holds its share, or the side is full. */
export type LimitReason = 'pod-connection-limit' | 'node-connection-limit';

export type Admitted = { ok: true; release: () => void } | { ok: false; reason: LimitReason };

/** The pure decision: may one more connection from a source holding `bySource` open, of `total`? */
export function admission(held: { bySource: number; total: number }, caps: { perPod: number; total: number }): LimitReason | undefined {
  if (held.bySource >= caps.perPod) return 'pod-connection-limit';
  if (held.total >= caps.total) return 'node-connection-limit';
  return undefined;
}

class SideCount {
  total = 0;
  readonly bySource = new Map<string, number>();
}

export class ConnectionLimits {
  private readonly sides: Record<Side, SideCount> = { outbound: new SideCount(), inbound: new SideCount() };

  constructor(readonly caps: ConnectionCaps) {}

  /** Take a place for a connection from `source` (a pod's IP), or say why not. */
  admit(side: Side, source: string): Admitted {
    return this.admitWithin(side, source, { perPod: this.caps.perPod, total: this.caps[side] });
  }

  private admitWithin(side: Side, source: string, caps: { perPod: number; total: number }): Admitted {
    const s = this.sides[side];
    const bySource = s.bySource.get(source) ?? 0;
    const refused = admission({ bySource, total: s.total }, caps);
    if (refused) return { ok: false, reason: refused };
    s.total++;
    s.bySource.set(source, bySource + 1);
    let held = true;
    return {
      ok: true,
      release: () => {
        if (!held) return;
        held = false;
        s.total--;
        const n = (s.bySource.get(source) ?? 1) - 1;
        if (n > 0) s.bySource.set(source, n);
        else s.bySource.delete(source);
      },
    };
  }

  /**
   * A place for an idle upstream connection kept for `source` (the source node's routed requests):
   * only while the pod holds under half its share and the side under half its cap, so idle
   * connections never take the places its own new connections need.
   */
  admitIdle(side: Side, source: string): Admitted {
    return this.admitWithin(side, source, { perPod: Math.floor(this.caps.perPod / 2), total: Math.floor(this.caps[side] / 2) });
  }

  /** Connections held now, per side. */
  held(side: Side): number {
    return this.sides[side].total;
  }
}
