import { strict as assert } from 'node:assert';
import { InvalidArgumentError } from 'commander';
import { collectCidr, collectPort, parseCidr4, parseIPv4, parsePort } from '../../../cli/options';

/** Asserts a one-line commander InvalidArgumentError that quotes the input. */
function rejects(fn: () => unknown, input: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), `not one line: ${JSON.stringify(err.message)}`);
    assert.ok(err.message.includes(input), `message does not name the input: ${err.message}`);
    return true;
  });
}

describe('options', () => {
  describe('parsePort', () => {
    const accept: [string, number][] = [
      ['1', 1],
      ['80', 80],
      ['15001', 15001],
      ['65535', 65535],
    ];
    for (const [input, port] of accept) {
      it(`accepts ${JSON.stringify(input)} as ${port}`, () => assert.equal(parsePort(input), port));
    }

    const reject = ['0', '65536', '1e3', ' 80', '80 ', '-1', '+80', '', '0x50', '8.0', '80a', '99999999999999999999'];
    for (const input of reject) {
      it(`rejects ${JSON.stringify(input)}`, () => rejects(() => parsePort(input), input));
    }
  });

  describe('collectPort', () => {
    it('starts a list', () => assert.deepEqual(collectPort('80'), [80]));
    it('appends to the previous values in order', () => assert.deepEqual(collectPort('53', [443, 80]), [443, 80, 53]));
    it('does not change the previous list', () => {
      const prev = [443];
      collectPort('80', prev);
      assert.deepEqual(prev, [443]);
    });
    it('rejects a bad port', () => rejects(() => collectPort('65536', [80]), '65536'));
  });

  describe('parseIPv4', () => {
    for (const input of ['10.0.0.1', '0.0.0.0', '255.255.255.255', '192.168.1.1']) {
      it(`accepts ${input}`, () => assert.equal(parseIPv4(input), input));
    }

    const reject = ['10.0.0', '10.0.0.256', '::1', '::ffff:10.0.0.1', ' 10.0.0.1', '10.0.0.1 ', '010.0.0.1', 'localhost', '10.0.0.1/32', ''];
    for (const input of reject) {
      it(`rejects ${JSON.stringify(input)}`, () => rejects(() => parseIPv4(input), input));
    }
  });

  describe('parseCidr4', () => {
    const accept: [string, string][] = [
      ['10.0.0.0/8', '10.0.0.0/8'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['10.96.0.0/12', '10.96.0.0/12'],
      ['169.254.169.254/32', '169.254.169.254/32'],
      ['10.0.0.0/08', '10.0.0.0/8'],
    ];
    for (const [input, cidr] of accept) {
      it(`accepts ${input} as ${cidr}`, () => assert.equal(parseCidr4(input), cidr));
    }

    const reject = [
      '10.0.0.1/33',
      '10.0.0/8',
      '::1',
      '::1/128',
      '10.0.0.0',
      '10.0.0.0/',
      '10.0.0.0/8/8',
      '10.0.0.0/-1',
      '10.0.0.0/1e1',
      '10.0.0.0/ 8',
      '10.0.0.0/0x8',
      '/8',
      '10.0.0.256/8',
      '',
    ];
    for (const input of reject) {
      it(`rejects ${JSON.stringify(input)}`, () => rejects(() => parseCidr4(input), input));
    }
  });

  describe('collectCidr', () => {
    it('starts a list', () => assert.deepEqual(collectCidr('10.0.0.0/8'), ['10.0.0.0/8']));
    it('appends normalized CIDRs in order', () => {
      assert.deepEqual(collectCidr('10.0.0.0/08', ['192.168.0.0/16']), ['192.168.0.0/16', '10.0.0.0/8']);
    });
    it('rejects a bad CIDR', () => rejects(() => collectCidr('10.0.0.1/33', []), '10.0.0.1/33'));
  });
});
