/**
 * The control endpoints of the collector's API (common/control-api.ts): policies, egress rules,
 * learning, replay, the audit log and status. The handler (handler.ts) authenticates, checks the
 * method and reads the body; this maps a route, its query and body to an answer, checking every
 * parameter first so a bad request changes nothing.
 */
import type { AuditKind, AuditListResponse, AuditRecord, AuditVerifyResponse, EgressRuleRequest, KubernetesStatus } from '../../common/control-api';
import { AUDIT_KINDS, CONTROL_API } from '../../common/control-api';
import { invalidArgument, PalisadeError, quoteValue } from '../../common/errors';
import type { PolicyFile } from '../../common/policy-files';
import { oneOf, whole } from '../../common/query-params';
import type { FlowStore } from '../flows/store';
import type { SinkCounts } from '../../common/flows-api';
import type { PolicyManager } from '../policies/manager';
import { isRecord } from '../../common/record';

export interface AuditReader {
  list(q: { since?: number; limit?: number; kind?: AuditKind }): AuditRecord[];
  verify(): AuditVerifyResponse;
  count(): number;
}

export interface ControlDeps {
  policies: PolicyManager;
  flows: FlowStore;
  audit?: AuditReader;
  /** With `--kubernetes`: what the collector makes of the cluster, for status. */
  kubernetes?: () => KubernetesStatus;
  /** each flow sink's counts, for status */
  sinks?: () => Record<string, SinkCounts>;
}

const MAX_FILES = 100;
const MAX_SOURCE = 1024;
const DAY_MS = 86_400_000;


/** The query's parameters, each at most once and only those `allowed`. */
function params(route: string, q: URLSearchParams, allowed: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of q) {
    if (!allowed.includes(k)) {
      throw invalidArgument(`invalid parameter: ${route} takes ${allowed.length ? allowed.join(', ') : 'no parameters'}, not ${quoteValue(k)}`);
    }
    if (out.has(k)) throw invalidArgument(`invalid ${k}: given more than once`);
    if (v.length === 0 || v.length > 1024) throw invalidArgument(`invalid ${k}: empty or too long`);
    out.set(k, v);
  }
  return out;
}

const optionalWhole = (name: string, v: string | undefined, min: number): number | undefined => (v === undefined ? undefined : whole(name, v, min));

function flag(name: string, v: string | undefined): boolean {
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  throw invalidArgument(`invalid ${name}: use true or false`);
}

function files(body: Record<string, unknown>): PolicyFile[] {
  const list = body.files;
  if (!Array.isArray(list) || list.length === 0) throw invalidArgument('invalid body: "files" must be a non-empty list of {source, text}');
  if (list.length > MAX_FILES) throw invalidArgument(`invalid body: at most ${MAX_FILES} files at once`);
  return list.map((f, i) => {
    if (!isRecord(f) || typeof f.source !== 'string' || typeof f.text !== 'string' || f.source.length === 0 || f.source.length > MAX_SOURCE) {
      throw invalidArgument(`invalid body: files[${i}] must be {source, text}`);
    }
    return { source: f.source, text: f.text };
  });
}

function dryRun(body: Record<string, unknown>): boolean {
  if (body.dryRun === undefined) return false;
  if (typeof body.dryRun !== 'boolean') throw invalidArgument('invalid body: "dryRun" must be true or false');
  return body.dryRun;
}

function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(body)) if (!allowed.includes(k)) throw invalidArgument(`invalid body: unknown field ${quoteValue(k)} (known: ${allowed.join(', ')})`);
}


export class ControlApi {
  constructor(private readonly deps: ControlDeps) {}

  /**
   * The answer for a control route (a promise for those that read policy files: they are read off
   * the event loop). `author` names the caller in versions and the audit log.
   */
  handle(route: string, query: URLSearchParams, body: unknown, author: string): unknown {
    const p = this.deps.policies;
    const b = (allowed: readonly string[]): Record<string, unknown> => {
      if (!isRecord(body)) throw invalidArgument('invalid body: send a JSON object');
      onlyFields(body, allowed);
      return body;
    };
    switch (route) {
      case CONTROL_API.status: {
        params(route, query, []);
        const status = p.status({ flowsStored: this.deps.flows.rows(), auditRecords: this.deps.audit?.count() ?? 0 });
        const sinks = this.deps.sinks?.();
        if (sinks && Object.keys(sinks).length > 0) status.flows.sinks = sinks;
        const kubernetes = this.deps.kubernetes?.();
        return kubernetes ? { ...status, kubernetes } : status;
      }
      case CONTROL_API.policies:
        params(route, query, []);
        return p.list();
      case CONTROL_API.policyGet: {
        const name = params(route, query, ['name']).get('name');
        if (name === undefined) throw invalidArgument('invalid request: name is required');
        return p.get(name);
      }
      case CONTROL_API.policyHistory:
        return p.history(params(route, query, ['name']).get('name'));
      case CONTROL_API.policyApply: {
        const body = b(['files', 'dryRun']);
        return p.apply(files(body), dryRun(body), author);
      }
      case CONTROL_API.policyDelete: {
        const body = b(['name', 'dryRun']);
        if (typeof body.name !== 'string') throw invalidArgument('invalid body: "name" must be [Kind/]namespace/name or a name');
        return p.delete(body.name, dryRun(body), author);
      }
      case CONTROL_API.policyTest: {
        const body = b(['files', 'since']);
        const since = typeof body.since === 'number' && Number.isSafeInteger(body.since) && body.since >= 0 ? body.since : undefined;
        if (since === undefined) throw invalidArgument('invalid body: "since" must be epoch milliseconds');
        return p.test(files(body), since);
      }
      case CONTROL_API.egress:
        params(route, query, ['workload']);
        return p.egressList(query.get('workload') ?? undefined);
      case CONTROL_API.egressRules: {
        const body = b(['workload', 'action', 'destinations', 'ports', 'protocol', 'dryRun']);
        if (typeof body.workload !== 'string') throw invalidArgument('invalid body: "workload" must be namespace/name or name');
        if (body.action !== 'allow' && body.action !== 'deny') throw invalidArgument('invalid body: "action" must be allow or deny');
        if (!Array.isArray(body.destinations)) throw invalidArgument('invalid body: "destinations" must be a list');
        if (body.ports !== undefined && !Array.isArray(body.ports)) throw invalidArgument('invalid body: "ports" must be a list of numbers');
        if (body.protocol !== undefined && body.protocol !== 'TCP' && body.protocol !== 'UDP' && body.protocol !== 'ICMP') {
          throw invalidArgument('invalid body: "protocol" must be TCP, UDP or ICMP');
        }
        const req: EgressRuleRequest = {
          workload: body.workload,
          action: body.action,
          destinations: body.destinations as string[],
          ...(body.ports === undefined ? {} : { ports: body.ports as number[] }),
          ...(body.protocol === undefined ? {} : { protocol: body.protocol }),
          dryRun: dryRun(body),
        };
        return p.egressRule(req, author);
      }
      case CONTROL_API.egressRemove: {
        const body = b(['id', 'dryRun']);
        if (typeof body.id !== 'number') throw invalidArgument('invalid body: "id" must be a number (from palisade egress list)');
        return p.egressRemove(body.id, dryRun(body), author);
      }
      case CONTROL_API.egressLearn: {
        const q = params(route, query, ['workload', 'since', 'groupSuffixes', 'includeDenied']);
        const workload = q.get('workload');
        if (workload === undefined) throw invalidArgument('invalid request: workload is required');
        const since = optionalWhole('since', q.get('since'), 0) ?? Date.now() - DAY_MS;
        return p.learn(workload, since, { groupSuffixes: flag('groupSuffixes', q.get('groupSuffixes')), includeDenied: flag('includeDenied', q.get('includeDenied')) });
      }
      case CONTROL_API.audit: {
        const q = params(route, query, ['since', 'limit', 'kind']);
        const kindText = q.get('kind');
        const kind = kindText === undefined ? undefined : oneOf('kind', kindText, AUDIT_KINDS);
        const answer: AuditListResponse = {
          records: this.audit().list({ since: optionalWhole('since', q.get('since'), 0), limit: optionalWhole('limit', q.get('limit'), 1), kind }),
        };
        return answer;
      }
      case CONTROL_API.auditVerify:
        params(route, query, []);
        return this.audit().verify();
      default:
        throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no endpoint ${route.slice(0, 256)}`);
    }
  }

  private audit(): AuditReader {
    if (!this.deps.audit) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', 'this collector keeps no audit log');
    return this.deps.audit;
  }
}
