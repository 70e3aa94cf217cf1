import { strict as assert } from 'node:assert';
import type { HttpRecord } from '../../../../agent/proxy/http';
import { httpOutcome, outcomeOf, type FlowOutcome } from '../../../../agent/proxy/proxy-flow';

const exchange = (over: Partial<HttpRecord>): HttpRecord => ({ method: 'GET', path: '/', host: 'web:8080', status: 200, bytesSent: 0, bytesReceived: 0, durationMs: 1, ...over });
const AUDIT = { policy: 'default/audit-all', rule: 0 };

describe('proxy flows', () => {
  describe('outcomeOf', () => {
    const rows: Array<[string, Parameters<typeof outcomeOf>[0], FlowOutcome]> = [
      ['allowed, no policy', { allowed: true, reason: 'no-policy' }, { verdict: 'allowed', reason: 'no-policy', policy: undefined, rule: undefined, audit: undefined }],
      ['allowed by a rule', { allowed: true, reason: 'allowed-by-policy', policy: 'default/p', rule: 2 }, { verdict: 'allowed', reason: 'allowed-by-policy', policy: 'default/p', rule: 2, audit: undefined }],
      ['allowed and audited', { allowed: true, reason: 'no-policy', audit: AUDIT }, { verdict: 'audit', reason: 'no-policy', policy: undefined, rule: undefined, audit: AUDIT }],
      ['the mesh\'s own refusal (a fault abort): an error, not a denial', { allowed: false, reason: 'fault-abort', verdict: 'error' }, { verdict: 'error', reason: 'fault-abort', policy: undefined, rule: undefined, audit: undefined }],
      ['denied (an audit does not change it)', { allowed: false, reason: 'denied-by-policy', policy: 'default/d', rule: 0, audit: AUDIT }, { verdict: 'denied', reason: 'denied-by-policy', policy: 'default/d', rule: 0, audit: AUDIT }],
    ];
    for (const [name, decision, expected] of rows) it(name, () => assert.deepEqual(outcomeOf(decision), expected));
  });

  describe('httpOutcome', () => {
    const rows: Array<[string, HttpRecord, Partial<FlowOutcome>]> = [
      ['the decision authorize returned', exchange({ decision: { allowed: true, reason: 'allowed-by-policy', policy: 'default/p', rule: 1 } }), { verdict: 'allowed', reason: 'allowed-by-policy', policy: 'default/p', rule: 1 }],
      ['a denial, with its policy', exchange({ status: 403, decision: { allowed: false, reason: 'no-allow-policy-matched', policy: 'default/p' } }), { verdict: 'denied', reason: 'no-allow-policy-matched', policy: 'default/p' }],
      ['no route matched (404): an error with its reason, not a denial', exchange({ status: 404, decision: { allowed: false, status: 404, verdict: 'error', reason: 'no-route-match', route: 'default/web' } }), { verdict: 'error', reason: 'no-route-match' }],
      ['refused by the front before any decision', exchange({ status: 400, rejected: 'content-length-with-transfer-encoding' }), { verdict: 'denied', reason: 'content-length-with-transfer-encoding' }],
      ['no decision and no refusal reason: bad-request', exchange({ status: 0 }), { verdict: 'denied', reason: 'bad-request' }],
      ['a decision without a reason is not one', exchange({ status: 400, decision: { allowed: true } }), { verdict: 'denied', reason: 'bad-request' }],
      ['an error after an allow: error, the policy kept', exchange({ status: 503, decision: { allowed: true, reason: 'allowed-by-policy', policy: 'default/p', rule: 0 }, error: 'upstream: ECONNREFUSED' }), { verdict: 'error', reason: 'upstream: ECONNREFUSED', policy: 'default/p', rule: 0 }],
      ['an error before any decision', exchange({ status: 0, error: 'downstream closed' }), { verdict: 'error', reason: 'downstream closed' }],
    ];
    for (const [name, record, expected] of rows) {
      it(name, () => {
        const o = httpOutcome(record);
        assert.deepEqual({ verdict: o.verdict, reason: o.reason, policy: o.policy, rule: o.rule, audit: o.audit }, { policy: undefined, rule: undefined, audit: undefined, ...expected });
      });
    }
  });
});
