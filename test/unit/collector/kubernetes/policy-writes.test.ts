import { strict as assert } from 'node:assert';
import { writeFailure } from '../../../../collector/kubernetes/policy-writes';
import { PalisadeError } from '../../../../common/errors';

/** An error as KubeClient.call makes it: the API's answer (code) as its cause, or none. */
const apiError = (message: string, code?: number): PalisadeError => new PalisadeError('PALISADE_ERR_KUBERNETES', message, code === undefined ? {} : { cause: { code, body: '{}' } });

describe('writeFailure: the one line a failed policy write answers with', function () {
  const cases: Array<[string, Parameters<typeof writeFailure>, string, RegExp]> = [
    ['a 409 on an update: a conflict, nothing written', [{ op: 'update', source: 'AuthorizationPolicy shop/a' }, apiError('update …: the Kubernetes API answered 409 Conflict', 409), 0, []], 'PALISADE_ERR_CONFLICT', /^conflict: AuthorizationPolicy shop\/a was changed in the Kubernetes API since this collector read it \(another replica or kubectl\); nothing was written: try again$/],
    ['a 409 on a create after two writes rolled back', [{ op: 'create', source: 'EgressPolicy shop/e' }, apiError('create …: 409 AlreadyExists', 409), 2, []], 'PALISADE_ERR_CONFLICT', /^conflict: EgressPolicy shop\/e was created in the Kubernetes API .*; the 2 object\(s\) written before it were rolled back: nothing changed: try again$/],
    ['the API away, one write that could not be rolled back', [{ op: 'create', source: 'FaultInjection shop/f' }, apiError('create FaultInjection shop/f: cannot reach the Kubernetes API (ECONNREFUSED)'), 2, ['AuthorizationPolicy shop/a']], 'PALISADE_ERR_KUBERNETES', /^create FaultInjection shop\/f: cannot reach the Kubernetes API \(ECONNREFUSED\); rolled back but for AuthorizationPolicy shop\/a, which stay written in the Kubernetes API$/],
    ['no answer: the write may have been made', [{ op: 'create', source: 'HTTPRoute shop/r' }, apiError('create HTTPRoute shop/r: no answer from the Kubernetes API within 10000 ms'), 0, []], 'PALISADE_ERR_KUBERNETES', /^create HTTPRoute shop\/r: no answer from the Kubernetes API within 10000 ms: HTTPRoute shop\/r may or may not be written .*; nothing else was written$/],
    ['another refusal keeps its own code', [{ op: 'delete', source: 'EgressPolicy shop/e' }, new PalisadeError('PALISADE_ERR_NOT_FOUND', 'EgressPolicy shop/e is not in the Kubernetes API'), 0, []], 'PALISADE_ERR_NOT_FOUND', /^EgressPolicy shop\/e is not in the Kubernetes API; nothing was written$/],
  ];
  for (const [name, args, code, message] of cases) {
    it(name, function () {
      const e = writeFailure(...args);
      assert.equal(e.code, code);
      assert.match(e.message, message);
      assert.ok(!e.message.includes('\n'), 'one line');
    });
  }
});
