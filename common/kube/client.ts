/**
 * The Kubernetes API, as the agent and the collector use it: @kubernetes/client-node, loaded only
 * by the processes that talk to a cluster, configured from a kubeconfig file or from the pod's
 * service account (in-cluster). Every call has a deadline, and every failure becomes one
 * PALISADE_ERR_KUBERNETES line naming what was asked and why it failed (never a token).
 */
import * as fs from 'node:fs';
import type * as K8s from '@kubernetes/client-node';
import { describeCause, PalisadeError } from '../errors';

export type KubeModule = typeof K8s;

export interface KubeClientOptions {
  /** A kubeconfig file; without it, the in-cluster configuration (service account token, KUBERNETES_SERVICE_*). */
  kubeconfig?: string;
  /** Deadline of one request (default 10 s). */
  requestTimeoutMs?: number;
}

/** Where the API is and how to call it. Built once per process. */
export class KubeClient {
  readonly core: K8s.CoreV1Api;
  readonly custom: K8s.CustomObjectsApi;
  readonly discovery: K8s.DiscoveryV1Api;
  readonly coordination: K8s.CoordinationV1Api;
  readonly requestTimeoutMs: number;

  private constructor(
    readonly k8s: KubeModule,
    readonly config: K8s.KubeConfig,
    opts: KubeClientOptions,
  ) {
    this.core = config.makeApiClient(k8s.CoreV1Api);
    this.custom = config.makeApiClient(k8s.CustomObjectsApi);
    this.discovery = config.makeApiClient(k8s.DiscoveryV1Api);
    this.coordination = config.makeApiClient(k8s.CoordinationV1Api);
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  }

  /** Load the client library and the configuration; a bad or missing configuration is one line. */
  static async connect(opts: KubeClientOptions = {}): Promise<KubeClient> {
    const k8s = await import('@kubernetes/client-node');
    const config = new k8s.KubeConfig();
    try {
      if (opts.kubeconfig !== undefined) {
        fs.accessSync(opts.kubeconfig, fs.constants.R_OK);
        config.loadFromFile(opts.kubeconfig);
      } else {
        if (!process.env.KUBERNETES_SERVICE_HOST) {
          throw new Error('not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set): give --kubeconfig FILE');
        }
        config.loadFromCluster();
      }
      if (!config.getCurrentCluster()) throw new Error('the configuration names no current cluster');
    } catch (err) {
      const where = opts.kubeconfig !== undefined ? `kubeconfig ${opts.kubeconfig}` : 'the in-cluster configuration';
      throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `cannot use ${where}: ${describeCause(err)}`, { cause: err });
    }
    return new KubeClient(k8s, config, opts);
  }

  /** The API server's URL (for logs). */
  get server(): string {
    return this.config.getCurrentCluster()?.server ?? '?';
  }

  /** The current context's namespace (in a pod: the service account's), if it names one. */
  get namespace(): string | undefined {
    const ctx = this.config.getContextObject(this.config.getCurrentContext());
    return ctx?.namespace?.trim() || undefined;
  }

  newWatch(): K8s.Watch {
    return new this.k8s.Watch(this.config);
  }

  /**
   * Run one request with the client's deadline. `what` names it in errors ("get pod shop/web-1").
   * 404 resolves `undefined` when `notFound` is 'undefined'.
   */
  async call<T>(what: string, request: () => Promise<T>, opts: { notFound?: 'undefined' | 'throw'; timeoutMs?: number } = {}): Promise<T | undefined> {
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PalisadeError('PALISADE_ERR_KUBERNETES', `${what}: no answer from the Kubernetes API within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([request(), deadline]);
    } catch (err) {
      if (err instanceof PalisadeError) throw err;
      const status = statusOf(err);
      if (status?.code === 404 && opts.notFound === 'undefined') return undefined;
      throw kubeError(what, err);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The HTTP status and the API's Status message of a client-node error, when it has them. */
export function statusOf(err: unknown): { code: number; message: string | undefined; reason: string | undefined } | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown };
  const code = typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  if (code === undefined) return undefined;
  let body: unknown = e.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      body = undefined;
    }
  }
  const b = body as { message?: unknown; reason?: unknown } | undefined;
  return { code, message: typeof b?.message === 'string' ? b.message : undefined, reason: typeof b?.reason === 'string' ? b.reason : undefined };
}

/** One line for a failed API request: what was asked, the status and the API's own message. */
export function kubeError(what: string, err: unknown): PalisadeError {
  const status = statusOf(err);
  if (!status) return new PalisadeError('PALISADE_ERR_KUBERNETES', `${what}: cannot reach the Kubernetes API (${oneLine(describeCause(err))})`, { cause: err });
  const why = `${status.code}${status.reason ? ` ${status.reason}` : ''}${status.message ? `: ${status.message}` : ''}`;
  return new PalisadeError('PALISADE_ERR_KUBERNETES', `${what}: the Kubernetes API answered ${oneLine(why)}`, { cause: err });
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 300 ? `${flat.slice(0, 299)}…` : flat;
}
