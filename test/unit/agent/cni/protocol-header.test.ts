import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_RUN_DIR } from '../../../../agent/agent';
import {
  CNI_PROTOCOL_VERSION,
  CNI_VERSIONS,
  CniErrorCode,
  cniSocketPath,
  DEFAULT_PLUGIN_TIMEOUT_MS,
  MAX_CONFIG_BYTES,
  MAX_MESSAGE_CHARS,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
} from '../../../../agent/cni/protocol';

const REPO = path.resolve(__dirname, '../../../../..');
const HEADER = fs.readFileSync(path.join(REPO, 'native/cni/protocol.h'), 'utf8');

/** The value of `#define NAME value` in the header, evaluated when it is a number or product. */
function define(name: string): string {
  const m = new RegExp(`^#define ${name} (.+)$`, 'm').exec(HEADER);
  assert.ok(m, `native/cni/protocol.h defines ${name}`);
  return m[1]!.trim();
}

function numeric(name: string): number {
  const text = define(name).replace(/^\((.*)\)$/, '$1');
  assert.match(text, /^\d+( \* \d+)?$/, `${name} is a number or a product`);
  return text.split(' * ').reduce((a, b) => a * Number(b), 1);
}

/** The protocol is defined in agent/cni/protocol.ts; the C plugin repeats it in protocol.h. */
describe('palisade-cni protocol header', () => {
  const numbers: [string, number][] = [
    ['PCNI_PROTOCOL_VERSION', CNI_PROTOCOL_VERSION],
    ['PCNI_MAX_REQUEST_BYTES', MAX_REQUEST_BYTES],
    ['PCNI_MAX_RESPONSE_BYTES', MAX_RESPONSE_BYTES],
    ['PCNI_MAX_CONFIG_BYTES', MAX_CONFIG_BYTES],
    ['PCNI_DEFAULT_TIMEOUT_MS', DEFAULT_PLUGIN_TIMEOUT_MS],
    ['PCNI_MAX_MESSAGE_CHARS', MAX_MESSAGE_CHARS],
    ['PCNI_ERR_INCOMPATIBLE_VERSION', CniErrorCode.INCOMPATIBLE_VERSION],
    ['PCNI_ERR_UNSUPPORTED_FIELD', CniErrorCode.UNSUPPORTED_FIELD],
    ['PCNI_ERR_UNKNOWN_CONTAINER', CniErrorCode.UNKNOWN_CONTAINER],
    ['PCNI_ERR_INVALID_ENVIRONMENT', CniErrorCode.INVALID_ENVIRONMENT],
    ['PCNI_ERR_IO_FAILURE', CniErrorCode.IO_FAILURE],
    ['PCNI_ERR_DECODE_FAILED', CniErrorCode.DECODE_FAILED],
    ['PCNI_ERR_INVALID_CONFIG', CniErrorCode.INVALID_CONFIG],
    ['PCNI_ERR_TRY_AGAIN_LATER', CniErrorCode.TRY_AGAIN_LATER],
    ['PCNI_ERR_ENROLL_FAILED', CniErrorCode.ENROLL_FAILED],
    ['PCNI_ERR_NOT_ENROLLED', CniErrorCode.NOT_ENROLLED],
    ['PCNI_ERR_PROTOCOL', CniErrorCode.PROTOCOL],
  ];
  for (const [name, value] of numbers) {
    it(`${name} is ${value}`, () => assert.equal(numeric(name), value));
  }

  it('every CNI error code of the TypeScript side is in the header', () => {
    const inHeader = [...HEADER.matchAll(/^#define PCNI_ERR_\w+ (\d+)$/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
    assert.deepEqual(inHeader, Object.values(CniErrorCode).sort((a, b) => a - b));
  });

  it('the default socket is the agent run directory\'s CNI socket', () => {
    assert.equal(define('PCNI_DEFAULT_SOCKET'), JSON.stringify(cniSocketPath(DEFAULT_RUN_DIR)));
  });

  it('the plugin declares the CNI versions the agent accepts', () => {
    assert.equal(define('PCNI_CNI_VERSIONS'), CNI_VERSIONS.map((v) => JSON.stringify(v)).join(', '));
  });
});
