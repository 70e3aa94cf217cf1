import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { filtersToQuery, matchesFilters, parseFilterQuery, type FlowFilters } from '../../../common/flows-api';
import { isPalisadeError } from '../../../common/errors';
import { FlowStore } from '../../../collector/flows/store';
import { FILTER_CASES, knownFlows } from './flows-fixtures';
import { TempDirs } from './helpers';

describe('common/flows-api filters', () => {
  describe('parseFilterQuery', () => {
    const good: Array<[string, FlowFilters]> = [
      ['', {}],
      ['from=web&to=shop%2Fapi', { from: 'web', to: 'shop/api' }],
      ['from=spiffe%3A%2F%2Fcluster.local%2Fns%2Fshop%2Fsa%2Fweb', { from: 'spiffe://cluster.local/ns/shop/sa/web' }],
      ['verdict=denied&protocol=http&direction=egress', { verdict: 'denied', protocol: 'http', direction: 'egress' }],
      ['httpPath=%2Fapi%2F*', { httpPath: '/api/*' }],
      ['since=0&until=1700000000000&limit=10000', { since: 0, until: 1_700_000_000_000, limit: 10_000 }],
      ['limit=50000', { limit: 50_000 }],
      ['node=node-a', { node: 'node-a' }],
      ['route=shop%2Fcanary', { route: 'shop/canary' }],
    ];
    for (const [query, want] of good) {
      it(`reads ${JSON.stringify(query)}`, () => {
        assert.deepEqual(parseFilterQuery(new URLSearchParams(query)), want);
      });
    }

    const bad: Array<[string, string]> = [
      ['verdict=maybe', 'verdict'],
      ['protocol=sctp', 'protocol'],
      ['direction=sideways', 'direction'],
      ['since=yesterday', 'since'],
      ['since=-5', 'since'],
      ['until=1e12', 'until'],
      ['limit=-1', 'limit'],
      ['limit=0', 'limit'],
      ['limit=ten', 'limit'],
      ['limit=1.5', 'limit'],
      ['colour=red', 'colour'],
      ['verdict=denied&verdict=allowed', 'verdict'],
      ['from=', 'from'],
      [`to=${'x'.repeat(2000)}`, 'to'],
    ];
    for (const [query, param] of bad) {
      it(`refuses ${JSON.stringify(query.slice(0, 40))} with one line naming ${param}`, () => {
        assert.throws(
          () => parseFilterQuery(new URLSearchParams(query)),
          (err: unknown) => {
            assert.ok(isPalisadeError(err));
            assert.equal(err.code, 'PALISADE_ERR_INVALID_ARGUMENT');
            assert.ok(err.message.includes(param), err.message);
            assert.ok(!err.message.includes('\n'));
            assert.ok(err.message.length < 300, err.message);
            return true;
          },
        );
      });
    }
  });

  describe('filtersToQuery', () => {
    it('round-trips through parseFilterQuery, leaving out what is undefined', () => {
      const f: FlowFilters = {
        from: 'shop/web',
        to: 'spiffe://cluster.local/ns/shop/sa/api',
        verdict: 'audit',
        protocol: 'tls',
        httpPath: '/a b/*',
        since: 1,
        until: 2,
        limit: 3,
        node: 'node-a',
        direction: 'inbound',
        route: 'shop/canary',
      };
      assert.deepEqual(parseFilterQuery(new URLSearchParams(filtersToQuery(f))), f);
      assert.equal(filtersToQuery({ verdict: 'denied', from: undefined }), 'verdict=denied');
      assert.equal(filtersToQuery({}), '');
    });
  });

  describe('matchesFilters and the store SQL', () => {
    const dirs = new TempDirs();
    let store: FlowStore;
    const { a, b } = knownFlows();
    before(() => {
      store = FlowStore.open({ file: path.join(dirs.make(), 'flows.db'), log: pino({ level: 'silent' }) });
      store.ingest('node-a', { session: 's', seq: 1, lost: 0, flows: a });
      store.ingest('node-b', { session: 's', seq: 1, lost: 0, flows: b });
    });
    after(async () => {
      await store.close();
      dirs.cleanup();
    });

    it('store and answer a DNS query\'s flow by protocol dns, its type, rcode and answers intact', () => {
      const dns = { ...b[0]!, time: new Date(Date.parse(b[0]!.time) - 500).toISOString(), protocol: 'dns' as const, http: undefined, mtls: false, bytesSent: 42,
        destination: { ip: '10.96.0.10', port: 53, host: 'api.example.com' }, dns: { type: 'A', rcode: 'NOERROR', answers: ['edge.example.net.', '192.0.2.7'] } };
      const other = FlowStore.open({ file: path.join(dirs.make(), 'flows.db'), log: pino({ level: 'silent' }) });
      try {
        other.ingest('node-b', { session: 's', seq: 1, lost: 0, flows: [...b, dns] });
        const got = other.query({ protocol: 'dns' });
        assert.deepEqual(got.map((f) => [f.bytesSent, f.destination.host, f.dns]), [[42, 'api.example.com', dns.dns]]);
        assert.ok(matchesFilters(dns, { protocol: 'dns', to: '10.96.0.10' }));
      } finally {
        void other.close();
      }
    });

    it('a store of schema 2 gains the route column, filled from the stored records', async () => {
      const file = path.join(dirs.make(), 'flows.db');
      const old = FlowStore.open({ file, log: pino({ level: 'silent' }) });
      old.ingest('node-a', { session: 's', seq: 1, lost: 0, flows: a });
      await old.close();
      const db = new Database(file);
      db.exec('DROP INDEX flows_route; ALTER TABLE flows DROP COLUMN route;');
      db.pragma('user_version = 2');
      db.close();
      const again = FlowStore.open({ file, log: pino({ level: 'silent' }) });
      try {
        assert.deepEqual(again.query({ route: 'canary' }).map((f) => f.bytesSent), [6, 3]);
      } finally {
        await again.close();
      }
    });

    it('a gRPC call\'s grpc-status is stored in its own column and answered in the record; a store of schema 3 gains the column, filled from the stored records', async () => {
      const call = { ...a[0]!, http: { method: 'POST', path: '/shop.Cart/Add', status: 200, grpcStatus: 14 } };
      const file = path.join(dirs.make(), 'flows.db');
      const old = FlowStore.open({ file, log: pino({ level: 'silent' }) });
      old.ingest('node-a', { session: 's', seq: 1, lost: 0, flows: [call, a[1]!] });
      assert.deepEqual(old.query({ httpPath: '/shop.Cart/Add' }).map((f) => f.http), [call.http]);
      await old.close();
      const column = (): Array<number | null> => {
        const db = new Database(file, { readonly: true });
        try {
          return (db.prepare('SELECT grpc_status FROM flows ORDER BY id').all() as Array<{ grpc_status: number | null }>).map((r) => r.grpc_status);
        } finally {
          db.close();
        }
      };
      assert.deepEqual(column(), [14, null]);
      const db = new Database(file);
      db.exec('ALTER TABLE flows DROP COLUMN grpc_status;');
      db.pragma('user_version = 3');
      db.close();
      const again = FlowStore.open({ file, log: pino({ level: 'silent' }) });
      await again.close();
      assert.deepEqual(column(), [14, null]);
    });

    for (const [what, filters, tags] of FILTER_CASES) {
      it(`agree on ${what}`, () => {
        const bySql = store.query(filters).map((f) => f.bytesSent);
        assert.deepEqual(bySql, tags, 'SQL');
        const byJs = [...a, ...b]
          .filter((f) => matchesFilters(f, filters))
          .map((f) => f.bytesSent)
          .sort((x, y) => y - x)
          .slice(0, filters.limit ?? Infinity);
        assert.deepEqual(byJs, tags, 'matchesFilters');
      });
    }
  });
});
