/**
 * Part of the Kubernetes API double (./index.ts): the object store, in the API server's terms.
 * One resourceVersion counter for everything (etcd's revision): every write takes the next one and
 * is recorded as a change, so a watch can resume from any resourceVersion still in the history; a
 * compacted one is 410 Gone. Writes follow the API server's rules the Palisade code relies on:
 * uid and creationTimestamp set once, generateName, optimistic concurrency on resourceVersion,
 * status kept apart where the type has a status subresource, no-op updates not recorded,
 * namespaces that must exist, and a deleted namespace taking its objects with it.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { isDnsLabel } from '../../../common/identity';
import { isDnsSubdomain, isLabelKey, isLabelValue } from '../../../common/labels';
import { storageKey, type ResourceType } from './resources';

export type KubeObject = Record<string, unknown> & { metadata: Metadata };

export interface Metadata {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  generation?: number;
  creationTimestamp: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  generateName?: string;
  [key: string]: unknown;
}

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  rv: number;
  storage: string;
  type: ChangeType;
  /** The object before the change (MODIFIED, DELETED). */
  old: KubeObject | undefined;
  /** The object after it; for DELETED, the deleted object carrying the deletion's resourceVersion. */
  object: KubeObject;
}

/** An API error: becomes a `Status` with this HTTP code and reason. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = (type: ResourceType, name: string): ApiError =>
  new ApiError(404, 'NotFound', `${type.resource}${type.group ? `.${type.group}` : ''} "${name}" not found`);

const GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Seconds precision, as the API server writes timestamps. */
function timestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function withoutVersion(obj: KubeObject): unknown {
  const { resourceVersion: _rv, ...meta } = obj.metadata;
  return { ...obj, metadata: meta };
}

/** The parts of an object that count as its spec for `generation` (everything but metadata and status). */
function specOf(obj: Record<string, unknown>): unknown {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = obj;
  return rest;
}

export class ObjectStore {
  private rv = 1;
  /** Changes with rv ≤ this are gone from the history. */
  private compactedRv = 1;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: Change[] = [];
  private readonly listeners = new Set<(c: Change) => void>();

  constructor(private readonly maxHistory: number) {}

  get resourceVersion(): number {
    return this.rv;
  }

  onChange(fn: (c: Change) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get(type: ResourceType, ns: string, name: string): KubeObject | undefined {
    const o = this.bucket(type).get(`${ns}/${name}`);
    return o && structuredClone(o);
  }

  /** Objects of `type`, in one namespace or all; sorted by namespace and name, as the API lists them. */
  list(type: ResourceType, ns: string | undefined): KubeObject[] {
    const out: KubeObject[] = [];
    for (const o of this.bucket(type).values()) if (ns === undefined || o.metadata.namespace === ns) out.push(structuredClone(o));
    return out.sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
  }

  /** The changes after `rv`, or 'expired' when some of them were compacted away. */
  changesSince(rv: number): Change[] | 'expired' {
    if (rv < this.compactedRv) return 'expired';
    return this.history.filter((c) => c.rv > rv);
  }

  get oldestResourceVersion(): number {
    return this.compactedRv;
  }

  /** Forget the history up to now: a watch resuming from an older resourceVersion gets 410. */
  compact(): void {
    this.history.length = 0;
    this.compactedRv = this.rv;
  }

  create(type: ResourceType, ns: string, body: unknown, namespaceExists: (ns: string) => boolean): KubeObject {
    if (!isRecord(body)) throw new ApiError(400, 'BadRequest', 'the body must be a JSON object');
    const obj = structuredClone(body) as Record<string, unknown>;
    const meta = (isRecord(obj.metadata) ? obj.metadata : {}) as Partial<Metadata>;
    if (type.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== ns) {
        throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      if (!namespaceExists(ns)) throw new ApiError(404, 'NotFound', `namespaces "${ns}" not found`);
      meta.namespace = ns;
    } else {
      delete meta.namespace;
    }
    if (!meta.name && typeof meta.generateName === 'string' && meta.generateName !== '') {
      let suffix = '';
      for (let i = 0; i < 5; i++) suffix += GENERATE_ALPHABET[Math.floor(Math.random() * GENERATE_ALPHABET.length)];
      meta.name = `${meta.generateName}${suffix}`;
    }
    if (typeof meta.name !== 'string' || meta.name === '') throw new ApiError(422, 'Invalid', `${type.kind} is invalid: metadata.name: Required value: name or generateName is required`);
    this.checkMeta(type, meta as Metadata);
    type.check?.({ ...obj, metadata: meta });
    const key = `${type.namespaced ? ns : ''}/${meta.name}`;
    if (this.bucket(type).has(key)) throw new ApiError(409, 'AlreadyExists', `${type.resource} "${meta.name}" already exists`);
    meta.uid = randomUUID();
    meta.creationTimestamp = timestamp();
    meta.generation = 1;
    delete obj.apiVersion;
    delete obj.kind;
    obj.metadata = meta;
    return this.commit(type, key, 'ADDED', undefined, obj as KubeObject);
  }

  /**
   * Replace an object with `next(old)`. `subresource: 'status'` keeps everything but status;
   * otherwise a type with a status subresource keeps its status. A resourceVersion in the new
   * object must be the current one (409 otherwise). A change that changes nothing is not recorded.
   */
  update(type: ResourceType, ns: string, name: string, next: (old: KubeObject) => unknown, subresource?: 'status'): KubeObject {
    const key = `${type.namespaced ? ns : ''}/${name}`;
    const old = this.bucket(type).get(key);
    if (!old) throw notFound(type, name);
    const proposed = next(structuredClone(old));
    if (!isRecord(proposed)) throw new ApiError(400, 'BadRequest', 'the object must be a JSON object');
    const body = structuredClone(proposed) as Record<string, unknown>;
    const meta = (isRecord(body.metadata) ? body.metadata : {}) as Partial<Metadata>;
    if (meta.name !== undefined && meta.name !== name) throw new ApiError(400, 'BadRequest', `the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
    if (type.namespaced && meta.namespace !== undefined && meta.namespace !== ns) {
      throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    if (meta.resourceVersion === undefined && type.requireResourceVersion && subresource === undefined) {
      throw new ApiError(422, 'Invalid', `${type.kind}.${type.group} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`);
    }
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== old.metadata.resourceVersion) {
      throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${type.resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
    }
    let updated: Record<string, unknown>;
    if (subresource === 'status') {
      updated = { ...structuredClone(old), status: body.status };
      if (body.status === undefined) delete updated.status;
    } else {
      updated = { ...body, metadata: { ...meta, name, namespace: old.metadata.namespace, uid: old.metadata.uid, creationTimestamp: old.metadata.creationTimestamp } };
      if (type.status) {
        if (old.status === undefined) delete updated.status;
        else updated.status = structuredClone(old.status);
      }
      const m = updated.metadata as Metadata;
      if (!type.namespaced) delete m.namespace;
      this.checkMeta(type, m);
      type.check?.(updated);
      m.generation = isDeepStrictEqual(specOf(updated), specOf(old)) ? old.metadata.generation : (old.metadata.generation ?? 1) + 1;
    }
    delete updated.apiVersion;
    delete updated.kind;
    (updated.metadata as Metadata).resourceVersion = old.metadata.resourceVersion;
    if (isDeepStrictEqual(withoutVersion(updated as KubeObject), withoutVersion(old))) return structuredClone(old);
    return this.commit(type, key, 'MODIFIED', old, updated as KubeObject);
  }

  /** Delete after checking the preconditions; `cascade` runs between the checks and the deletion. */
  delete(type: ResourceType, ns: string, name: string, preconditions?: { uid?: unknown; resourceVersion?: unknown }, cascade?: () => void): KubeObject {
    const key = `${type.namespaced ? ns : ''}/${name}`;
    const old = this.bucket(type).get(key);
    if (!old) throw notFound(type, name);
    if (preconditions?.uid !== undefined && preconditions.uid !== old.metadata.uid) {
      throw new ApiError(409, 'Conflict', `Precondition failed: UID in precondition: ${String(preconditions.uid)}, UID in object meta: ${old.metadata.uid}`);
    }
    if (preconditions?.resourceVersion !== undefined && preconditions.resourceVersion !== old.metadata.resourceVersion) {
      throw new ApiError(409, 'Conflict', `Precondition failed: ResourceVersion in precondition: ${String(preconditions.resourceVersion)}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    }
    cascade?.();
    return this.commit(type, key, 'DELETED', old, structuredClone(old));
  }

  /** Drop a storage whose type went away (its CustomResourceDefinition was deleted), recording the deletions. */
  dropStorage(type: ResourceType): void {
    for (const o of this.list(type, undefined)) this.delete(type, o.metadata.namespace ?? '', o.metadata.name);
    this.objects.delete(storageKey(type));
  }

  private checkMeta(type: ResourceType, meta: Metadata): void {
    const nameOk = type.resource === 'namespaces' ? isDnsLabel(meta.name) : isDnsSubdomain(meta.name);
    if (!nameOk) throw new ApiError(422, 'Invalid', `${type.kind} "${meta.name}" is invalid: metadata.name: Invalid value: "${meta.name}"`);
    for (const field of ['labels', 'annotations'] as const) {
      const v = meta[field];
      if (v === undefined) continue;
      if (!isRecord(v) || Object.values(v).some((x) => typeof x !== 'string')) {
        throw new ApiError(400, 'BadRequest', `metadata.${field} must be a map of strings`);
      }
    }
    for (const [k, v] of Object.entries(meta.labels ?? {})) {
      if (!isLabelKey(k) || !isLabelValue(v)) throw new ApiError(422, 'Invalid', `${type.kind} "${meta.name}" is invalid: metadata.labels: Invalid value: "${k}=${v}"`);
    }
  }

  private bucket(type: ResourceType): Map<string, KubeObject> {
    const key = storageKey(type);
    let b = this.objects.get(key);
    if (!b) {
      b = new Map();
      this.objects.set(key, b);
    }
    return b;
  }

  private commit(type: ResourceType, key: string, kind: ChangeType, old: KubeObject | undefined, obj: KubeObject): KubeObject {
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    if (kind === 'DELETED') this.bucket(type).delete(key);
    else this.bucket(type).set(key, obj);
    const change: Change = { rv: this.rv, storage: storageKey(type), type: kind, old: old && structuredClone(old), object: structuredClone(obj) };
    this.history.push(change);
    while (this.history.length > this.maxHistory) this.compactedRv = this.history.shift()!.rv;
    for (const fn of this.listeners) fn(change);
    return structuredClone(obj);
  }
}
