/**
 * `authorize(request, index, stage)`: Istio's AuthorizationPolicy semantics as a pure function.
 * A matching DENY denies, then ALLOW policies decide; AUDIT only reports. The stages (`request`,
 * `tcp`, `connection`) for what cannot be seen yet, and the deliberate differences from Istio
 * (each only ever denying more): docs/architecture.md "Authorization decisions".
 */
import { EvalContext } from './eval-context';
import type { PolicyIndex } from './policy-index';
import type { AuthzRequest, AuthzStage, AuthzVerdict } from './requests';
import type { CompiledAuthorizationPolicy, CompiledAuthzRule, Condition } from './types';

/** How HTTP-only conditions are treated. */
const EVALUATE = 0;
const HTTP_HOLDS = 1;
const HTTP_FAILS = 2;
/** `tcp` ALLOW: rules with HTTP-only conditions never match. */
const SKIP_HTTP_RULES = 3;
type Mode = typeof EVALUATE | typeof HTTP_HOLDS | typeof HTTP_FAILS | typeof SKIP_HTTP_RULES;

const ctx = new EvalContext(); // synchronous and never re-entered: one is enough

function holds(c: Condition, mode: Mode): boolean {
  if (c.http) {
    if (mode === HTTP_HOLDS) return true;
    if (mode === HTTP_FAILS) return false;
  }
  return c.test(ctx);
}

function allHold(conditions: readonly Condition[], mode: Mode): boolean {
  for (let i = 0; i < conditions.length; i++) if (!holds(conditions[i]!, mode)) return false;
  return true;
}

function anyAllHold(alternatives: readonly (readonly Condition[])[], mode: Mode): boolean {
  for (let i = 0; i < alternatives.length; i++) if (allHold(alternatives[i]!, mode)) return true;
  return false;
}

function ruleMatches(rule: CompiledAuthzRule, mode: Mode): boolean {
  if (mode === SKIP_HTTP_RULES && rule.http) return false;
  return (
    allHold(rule.when, mode) &&
    (rule.from === undefined || anyAllHold(rule.from, mode)) &&
    (rule.to === undefined || anyAllHold(rule.to, mode))
  );
}

/** Index of the first rule of `policy` that matches, or -1 (a policy without rules matches nothing). */
function firstMatch(policy: CompiledAuthorizationPolicy, mode: Mode): number {
  const rules = policy.rules;
  for (let i = 0; i < rules.length; i++) if (ruleMatches(rules[i]!, mode)) return i;
  return -1;
}

export function authorize(req: AuthzRequest, index: PolicyIndex, stage: AuthzStage): AuthzVerdict {
  const wp = index.policies(req.destination.workload);
  if (wp.deny.length === 0 && wp.allow.length === 0 && wp.audit.length === 0) return { allowed: true, reason: 'no-policy' };
  const effective = stage === 'request' && req.http === undefined ? 'tcp' : stage;
  const denyMode: Mode = effective === 'request' ? EVALUATE : effective === 'tcp' ? HTTP_HOLDS : HTTP_FAILS;
  const allowMode: Mode = effective === 'request' ? EVALUATE : effective === 'tcp' ? SKIP_HTTP_RULES : HTTP_HOLDS;
  ctx.reset(req);
  try {
    let audit: AuthzVerdict['audit'];
    for (const p of wp.audit) {
      const i = firstMatch(p, denyMode);
      if (i >= 0) {
        audit = { policy: p.id, rule: i };
        break;
      }
    }
    for (const p of wp.deny) {
      const i = firstMatch(p, denyMode);
      if (i >= 0) return verdict(false, 'denied-by-policy', p.id, i, audit);
    }
    if (wp.allow.length === 0) return verdict(true, 'no-policy', undefined, undefined, audit);
    for (const p of wp.allow) {
      const i = firstMatch(p, allowMode);
      if (i >= 0) return verdict(true, 'allowed-by-policy', p.id, i, audit);
    }
    // Explainable: name the ALLOW policies none of whose rules matched.
    return verdict(false, 'no-allow-policy-matched', wp.allow.length === 1 ? wp.allow[0]!.id : wp.allow.map((p) => p.id).join(','), undefined, audit);
  } finally {
    ctx.req = undefined!; // do not keep the last request's headers alive
  }
}

function verdict(
  allowed: boolean,
  reason: AuthzVerdict['reason'],
  policy: string | undefined,
  rule: number | undefined,
  audit: AuthzVerdict['audit'],
): AuthzVerdict {
  const v: AuthzVerdict = { allowed, reason };
  if (policy !== undefined) v.policy = policy;
  if (rule !== undefined) v.rule = rule;
  if (audit !== undefined) v.audit = audit;
  return v;
}
