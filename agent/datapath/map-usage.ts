/**
 * The node's maps as the kernel has them: the size of every pinned map (a reinstall keeps them,
 * ./map-sizes.ts) and how many entries each holds (the agent's metrics).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native, type MapInfo } from '../../native';
import { closeQuietly, LINK_PREFIX } from './cgroup-links';
import { PROG_PREFIX } from './pod-wire';

/** One map's occupancy: entries in use of capacity (max_entries). */
export interface MapUsage {
  map: string;
  entries: number;
  capacity: number;
}

/** BPF_MAP_TYPE_ARRAY and PERCPU_ARRAY: every slot always exists, so they have no occupancy. */
const ARRAY_TYPES = new Set([2, 6]);

/** The max_entries of every map pinned in `pinDir` (none when it does not exist). */
export function pinnedSizes(pinDir: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!fs.existsSync(pinDir)) return out;
  for (const name of fs.readdirSync(pinDir)) {
    if (name.startsWith(LINK_PREFIX) || name.startsWith(PROG_PREFIX)) continue;
    let fd = -1;
    try {
      fd = native.objGet(path.join(pinDir, name));
      out.set(name, native.mapInfo(fd).maxEntries);
    } catch {
      /* not a map (or gone): nothing to keep */
    } finally {
      if (fd >= 0) closeQuietly(fd);
    }
  }
  return out;
}

/** Entries in use of each map that has occupancy (hash maps, LPM tries), in `maps` order. */
export function readMapUsage(maps: ReadonlyArray<{ name: string; fd: number; info: MapInfo }>): MapUsage[] {
  return maps
    .filter((m) => !ARRAY_TYPES.has(m.info.type))
    .map((m) => ({ map: m.name, entries: native.mapCount(m.fd, m.info.keySize, m.info.maxEntries), capacity: m.info.maxEntries }));
}
