/**
 * Join tokens shared by collector replicas through the Kubernetes API: one cluster-scoped
 * PalisadeJoinToken object (palisade.dev/v1, deploy/kubernetes/crds) per token, named
 * `plt-<id>`, whose `spec` is the token as tokens.json keeps it — the SHA-256 of its secret, never
 * the secret. `palisade collector token create` still writes one replica's tokens.json; that
 * replica publishes each token the API does not have yet (on start, and within a second of a
 * change), so a token made at one replica joins at any. A join spends the token through the API:
 * an update of the object, marked used, at the resourceVersion this replica read — of two
 * replicas accepting one token at once, one gets 409, reads the object again and finds it used.
 * A token not published yet is spent by creating its object already used (a 409 there means it
 * was just published: read it and spend it as above). When the API cannot say (an outage), the
 * join is refused (fail closed). A token this replica does not know yet — made at another replica
 * a moment ago, its watch not there yet — is read from the API once before it is refused
 * (`lookUp`); such reads are rate-limited (LOOKUP_BURST, then LOOKUP_PER_SECOND), so a flood of
 * unknown tokens costs the API a few reads a second: past the limit the token is refused unread,
 * counted. Objects a week past their token's expiry are deleted. A cluster
 * without the CRD runs one replica: its tokens are spent in its tokens.json, as without Kubernetes.
 */
import type { KubeClient } from '../../common/kube/client';
import { statusOf } from '../../common/kube/client';
import { Informer } from '../../common/kube/informer';
import type { Logger } from '../../common/log';
import { isRecord } from '../../common/record';
import { FrameBudget } from '../frame-budget';
import { parseToken, tokenVerdict, type JoinTokens, type StoredToken, type TokenStore, type TokenVerdict } from '../tokens';
import { NODE_GROUP, NODE_VERSION } from './node-records-share';

export const TOKEN_PLURAL = 'palisadejointokens';
const FORGET_AFTER_EXPIRY_MS = 7 * 86_400_000;
/** Spends retried after a lost race before giving up (each reads the object again). */
const SPEND_ATTEMPTS = 3;
/** Reads of unknown tokens from the API: a burst of this many, then this many a second. */
export const LOOKUP_BURST = 10;
const LOOKUP_PER_SECOND = 2;
/** A read of an unknown token holds its join at most this long. */
const LOOKUP_TIMEOUT_MS = 2_000;

interface TokenObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; resourceVersion?: string };
  spec?: unknown;
}

const nameOf = (id: string): string => `plt-${id}`;

/** A PalisadeJoinToken object as a stored token, or undefined when it is not one (ignored). */
function storedOf(o: TokenObject | undefined): StoredToken | undefined {
  const m = /^plt-([0-9a-f]{8})$/.exec(o?.metadata?.name ?? '');
  const spec = o?.spec;
  if (!m || !isRecord(spec)) return undefined;
  const str = (v: unknown): v is string => typeof v === 'string' && v.length <= 253;
  if (!str(spec.secretSha256) || !/^[0-9a-f]{64}$/.test(spec.secretSha256) || !str(spec.createdAt) || !str(spec.expiresAt) || !str(spec.node)) return undefined;
  if (spec.nodeCidr !== undefined && !str(spec.nodeCidr)) return undefined;
  if (!Array.isArray(spec.scopes) || !spec.scopes.every(str)) return undefined;
  if ((spec.usedAt !== undefined && !str(spec.usedAt)) || (spec.usedBy !== undefined && !str(spec.usedBy))) return undefined;
  const { secretSha256, createdAt, expiresAt, node, nodeCidr, scopes, usedAt, usedBy } = spec as unknown as StoredToken;
  return { id: m[1]!, secretSha256, createdAt, expiresAt, node, scopes, ...(nodeCidr === undefined ? {} : { nodeCidr }), ...(usedAt === undefined ? {} : { usedAt }), ...(usedBy === undefined ? {} : { usedBy }) };
}

function objectOf(t: StoredToken, resourceVersion?: string): TokenObject {
  const { id, ...spec } = t;
  return { apiVersion: `${NODE_GROUP}/${NODE_VERSION}`, kind: 'PalisadeJoinToken', metadata: { name: nameOf(id), ...(resourceVersion ? { resourceVersion } : {}) }, spec };
}

export class JoinTokensShare implements JoinTokens {
  private readonly informer: Informer<TokenObject>;
  private readonly objects = new Map<string, TokenObject>();
  private readonly stopWatching: () => void;
  private publishing: Promise<void> | undefined;
  private readonly log: Logger;
  /** Tokens published, spends lost to another replica (409), objects refused. */
  published = 0;
  conflicts = 0;
  refused = 0;
  /** Unknown tokens read from the API (`lookUp`), found there, and refused unread past the rate limit. */
  readonly lookUps = { read: 0, found: 0, limited: 0 };
  private readonly lookUpBudget = new FrameBudget({ capacity: LOOKUP_BURST, perSecond: LOOKUP_PER_SECOND });
  private readonly lookingUp = new Map<string, Promise<boolean>>();

  constructor(private readonly opts: { client: KubeClient; local: TokenStore; log: Logger }) {
    const { client } = opts;
    this.log = opts.log.child({ component: 'kubernetes-tokens' });
    this.informer = new Informer<TokenObject>(
      {
        client,
        what: `join tokens (${TOKEN_PLURAL}.${NODE_GROUP})`,
        path: `/apis/${NODE_GROUP}/${NODE_VERSION}/${TOKEN_PLURAL}`,
        list: () => client.custom.listClusterCustomObject({ group: NODE_GROUP, version: NODE_VERSION, plural: TOKEN_PLURAL }) as never,
        log: this.log,
      },
      { add: (o) => this.seen(o), update: (o) => this.seen(o), delete: (o) => void this.objects.delete(o.metadata?.name ?? '') },
    );
    this.stopWatching = opts.local.watch(() => this.publish());
  }

  start(): void {
    this.informer.start();
    void this.informer.synced().then(() => this.publish());
  }

  synced(): Promise<void> {
    return this.informer.synced();
  }

  async stop(): Promise<void> {
    this.stopWatching();
    await this.informer.stop();
    await this.publishing;
  }

  check(token: string, now = new Date()): TokenVerdict {
    const parsed = parseToken(token);
    if (!parsed) return { ok: false, reason: 'malformed token' };
    return tokenVerdict(this.stored(parsed.id), token, undefined, now);
  }

  async spend(token: string, node: string, now = new Date()): Promise<TokenVerdict> {
    const parsed = parseToken(token);
    if (!parsed) return { ok: false, reason: 'malformed token' };
    const { client } = this.opts;
    const params = { group: NODE_GROUP, version: NODE_VERSION, plural: TOKEN_PLURAL };
    for (let attempt = 0; attempt < SPEND_ATTEMPTS; attempt++) {
      const object = this.objects.get(nameOf(parsed.id));
      const stored = this.stored(parsed.id);
      const verdict = tokenVerdict(stored, token, node, now);
      if (!verdict.ok || !stored) return verdict;
      const used = objectOf({ ...stored, usedAt: now.toISOString(), usedBy: node }, object?.metadata?.resourceVersion);
      try {
        const written = (await client.call(`spend join token ${parsed.id}`, () =>
          object ? client.custom.replaceClusterCustomObject({ ...params, name: nameOf(parsed.id), body: used }) : client.custom.createClusterCustomObject({ ...params, body: used }),
        )) as TokenObject;
        if (written?.metadata?.name) this.objects.set(written.metadata.name, written);
        this.markLocal(parsed.id, now.toISOString(), node);
        return verdict;
      } catch (err) {
        const code = statusOf((err as { cause?: unknown }).cause)?.code;
        if (code === 404 && !object) {
          // No PalisadeJoinToken kind in this cluster (CRD not installed): one replica, its own tokens.json.
          this.log.warn({ tokenId: parsed.id }, 'the API has no PalisadeJoinToken kind: the token is spent in this replica\'s tokens.json only');
          return this.opts.local.consume(token, node, now);
        }
        if (code !== 409) throw err;
        // Another replica changed (or published) the token first: read it again and decide again.
        this.conflicts += 1;
        const fresh = (await client.call(`read join token ${parsed.id}`, () => client.custom.getClusterCustomObject({ ...params, name: nameOf(parsed.id) }))) as TokenObject;
        this.objects.set(nameOf(parsed.id), fresh);
      }
    }
    return { ok: false, id: parsed.id, reason: 'token contended by other joins; try again' };
  }

  /**
   * A token this replica does not know: read its object from the API once (another replica may have
   * published it before this one's watch delivered it): whether this replica knows it now (then
   * `check` again). Never throws: a token not found, not readable, or past the rate limit stays
   * unknown and is refused as before.
   */
  lookUp(token: string): Promise<boolean> {
    const parsed = parseToken(token);
    if (!parsed) return Promise.resolve(false);
    if (this.stored(parsed.id)) return Promise.resolve(true);
    const pending = this.lookingUp.get(parsed.id);
    if (pending) return pending;
    if (!this.lookUpBudget.take(1)) {
      this.lookUps.limited += 1;
      return Promise.resolve(false);
    }
    this.lookUps.read += 1;
    const { client } = this.opts;
    const name = nameOf(parsed.id);
    const read = client
      .call(`read join token ${parsed.id}`, () => client.custom.getClusterCustomObject({ group: NODE_GROUP, version: NODE_VERSION, plural: TOKEN_PLURAL, name }), { notFound: 'undefined', timeoutMs: LOOKUP_TIMEOUT_MS })
      .then(
        (o) => {
          const object = o as TokenObject | undefined;
          // the watch may have brought it meanwhile: its copy is kept (kept current; a stale one costs a 409 at the spend)
          if (!storedOf(object) || this.objects.has(name)) return;
          this.objects.set(name, object!);
          this.lookUps.found += 1;
        },
        (err: unknown) => this.log.warn({ err, tokenId: parsed.id }, 'cannot read an unknown join token from the API: it is refused'),
      )
      .finally(() => this.lookingUp.delete(parsed.id))
      .then(() => this.stored(parsed.id) !== undefined);
    this.lookingUp.set(parsed.id, read);
    return read;
  }

  /** The token of `id`: the API's when it has it (it knows whether another replica spent it), else tokens.json's. */
  private stored(id: string): StoredToken | undefined {
    const object = this.objects.get(nameOf(id));
    if (object) return storedOf(object);
    return this.opts.local.list().find((t) => t.id === id);
  }

  private seen(o: TokenObject): void {
    const name = o.metadata?.name;
    if (!name) return;
    const stored = storedOf(o);
    if (!stored) {
      this.refused += 1;
      this.log.warn({ name }, 'PalisadeJoinToken object refused: not a join token; it joins nothing');
      this.objects.delete(name);
      return;
    }
    this.objects.set(name, o);
    if (stored.usedAt && stored.usedBy) this.markLocal(stored.id, stored.usedAt, stored.usedBy);
  }

  private markLocal(id: string, usedAt: string, usedBy: string): void {
    try {
      this.opts.local.markUsed(id, usedAt, usedBy);
    } catch (err) {
      this.log.warn({ err, tokenId: id }, 'cannot mark a spent join token used in tokens.json (the API has it used)');
    }
  }

  /** Create the objects of local tokens the API does not have; delete objects a week past expiry. */
  private publish(): void {
    if (this.publishing || !this.informer.hasSynced) return;
    this.publishing = this.publishAll().finally(() => (this.publishing = undefined));
  }

  private async publishAll(now = Date.now()): Promise<void> {
    const { client } = this.opts;
    const params = { group: NODE_GROUP, version: NODE_VERSION, plural: TOKEN_PLURAL };
    let local: StoredToken[];
    try {
      local = this.opts.local.list();
    } catch (err) {
      this.log.error({ err }, 'cannot read tokens.json to publish its tokens');
      return;
    }
    for (const t of local) {
      if (this.objects.has(nameOf(t.id)) || Date.parse(t.expiresAt) <= now || t.node === undefined) continue;
      try {
        const written = (await client.call(`publish join token ${t.id}`, () => client.custom.createClusterCustomObject({ ...params, body: objectOf(t) }))) as TokenObject;
        if (written?.metadata?.name) this.objects.set(written.metadata.name, written);
        this.published += 1;
        this.log.info({ tokenId: t.id, node: t.node }, 'join token published to the other collector replicas');
      } catch (err) {
        if (statusOf((err as { cause?: unknown }).cause)?.code === 409) continue; // there already: the watch brings it
        this.log.warn({ err, tokenId: t.id }, 'cannot publish a join token: it joins at this replica only until it is');
      }
    }
    for (const [name, o] of [...this.objects]) {
      const stored = storedOf(o);
      if (!stored || now - Date.parse(stored.expiresAt) <= FORGET_AFTER_EXPIRY_MS) continue;
      try {
        await client.call(`delete join token ${stored.id}`, () => client.custom.deleteClusterCustomObject({ ...params, name }));
      } catch (err) {
        if (statusOf((err as { cause?: unknown }).cause)?.code !== 404) this.log.warn({ err, tokenId: stored.id }, 'cannot delete an expired join token');
      }
    }
  }
}
