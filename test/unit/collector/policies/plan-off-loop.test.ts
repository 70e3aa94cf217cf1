/**
 * A change's plan (per-policy ops and YAML diffs) made in the policy worker when many policies
 * differ: the same changes, in the same order, as `planChanges` on the event loop; few
 * differences, or a worker that refuses the job, and it is made here.
 */
import { strict as assert } from 'node:assert';
import { OffLoop } from '../../../../collector/policies/off-loop';
import { differing, PLAN_OFF_LOOP_MIN, planOffLoop } from '../../../../collector/policies/plan-off-loop';
import { planChanges, type DesiredPolicy, type StoredPolicy } from '../../../../collector/policies/repository';
import { silentLogger } from '../../../../common/log';

const manifest = (name: string, app: string): Record<string, unknown> => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'shop' },
  spec: { selector: { matchLabels: { app } }, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: [`ns-${app}`] } }] }] },
});
const desired = (name: string, app: string, origin: DesiredPolicy['origin'] = 'api', file?: string): DesiredPolicy => ({
  kind: 'AuthorizationPolicy',
  namespace: 'shop',
  name,
  origin,
  ...(file === undefined ? {} : { file }),
  manifest: manifest(name, app),
});
const stored = (p: DesiredPolicy, id: number): StoredPolicy => ({ ...p, id, version: 1 });

/** 150 stored; next: 60 changed, 40 new, 30 gone, 10 moved to the policy directory, 50 unchanged. */
function bigChange(): { current: StoredPolicy[]; next: DesiredPolicy[] } {
  const current = Array.from({ length: 150 }, (_, i) => stored(desired(`p-${String(i).padStart(3, '0')}`, `a${i}`), i + 1));
  const next: DesiredPolicy[] = [];
  current.forEach((p, i) => {
    if (i < 60) next.push(desired(p.name, `b${i}`));
    else if (i < 90) return;
    else if (i < 100) next.push(desired(p.name, `a${i}`, 'dir', `/etc/policies/${p.name}.yaml`));
    else next.push({ ...p, manifest: manifest(p.name, `a${i}`) }); // a new object, the same text
  });
  for (let i = 0; i < 40; i++) next.push(desired(`new-${i}`, `n${i}`));
  return { current, next };
}

describe('planOffLoop', function () {
  this.timeout(60_000);
  let loop: OffLoop;
  const jobs: string[] = [];
  let refuse = false;
  const counting = (): OffLoop =>
    ({
      run: (job: { kind: string }) => {
        jobs.push(job.kind);
        return refuse ? Promise.reject(new Error('busy')) : loop.run(job);
      },
    }) as unknown as OffLoop;
  beforeEach(() => {
    loop = new OffLoop({ log: silentLogger(), what: 'policy files', tooLongHint: 'split them', deadlineMs: 30_000 });
    jobs.length = 0;
    refuse = false;
  });
  afterEach(() => loop.close());

  it('many policies differ: made in the worker, the same changes in the same order as planChanges', async () => {
    const { current, next } = bigChange();
    assert.equal(differing(current, next), 140);
    const plan = await planOffLoop(counting(), current, next, 4);
    assert.deepEqual(jobs, ['plan']);
    const here = planChanges(current, next);
    assert.deepEqual(plan.changes, here.changes);
    assert.equal(plan.changed, true);
    assert.deepEqual(plan.next, next);
    const ops = new Map<string, number>();
    for (const c of plan.changes) ops.set(c.op, (ops.get(c.op) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(ops), { update: 70, delete: 30, unchanged: 50, create: 40 });
  });

  it(`${PLAN_OFF_LOOP_MIN} or fewer differences: made here, no job`, async () => {
    const { current } = bigChange();
    const next = [...current.slice(1), desired('new', 'n')];
    const plan = await planOffLoop(counting(), current, next, 4);
    assert.deepEqual(jobs, []);
    assert.deepEqual(plan.changes, planChanges(current, next).changes);
  });

  it('a worker that refuses the job: the same plan, made here', async () => {
    const { current, next } = bigChange();
    refuse = true;
    const plan = await planOffLoop(counting(), current, next, 4);
    assert.deepEqual(jobs, ['plan']);
    assert.deepEqual(plan.changes, planChanges(current, next).changes);
  });
});
