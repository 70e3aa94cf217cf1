/** For the CNI endpoint tests: the real CniServer on a temporary socket with a fake enroller and its logs, and a plugin-like client. */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { CniServer, type CniServerLimits } from '../../agent/cni/server';
import { createRootLogger } from '../../common/log';
import { FakeEnroller } from './cni-fake-enroller';
import { JsonLines } from './fixtures';
import { tempDir } from './agent';

export const POD_UID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

/** A bridge + host-local result as Debian's plugins print it (cniVersion 1.0.0): two host-side interfaces, the pod's eth0. */
export const BRIDGE_RESULT = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'cni0', mac: '4a:5c:1e:0b:2a:01' },
    { name: 'veth1a2b3c4d', mac: '26:9f:4e:33:10:aa' },
    { name: 'eth0', mac: '7e:12:9a:0c:55:02', sandbox: '/var/run/netns/cni-test' },
  ],
  ips: [{ interface: 2, address: '10.22.0.5/16', gateway: '10.22.0.1' }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: {},
};

export interface TestEndpoint {
  server: CniServer;
  enroller: FakeEnroller;
  dir: string;
  socket: string;
  logs: JsonLines;
  close(): Promise<void>;
}

export async function startEndpoint(limits: Partial<CniServerLimits> = {}): Promise<TestEndpoint> {
  const dir = tempDir('cni');
  const socket = path.join(dir, 'run', 'cni.sock');
  const stream = new PassThrough();
  const logs = new JsonLines(stream);
  const enroller = new FakeEnroller();
  const server = await CniServer.start({ socketPath: socket, enroller, limits, log: createRootLogger({ level: 'debug', destination: stream }) });
  return {
    server,
    enroller,
    dir,
    socket,
    logs,
    close: async () => {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A valid request as palisade-cni sends it (a bridge + host-local prevResult). */
export function sampleRequest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    palisadeCni: 1,
    command: 'ADD',
    cniVersion: '1.0.0',
    network: 'palisade-test',
    containerId: 'c0ffee01',
    netns: '/var/run/netns/cni-test',
    ifName: 'eth0',
    pod: { namespace: 'shop', name: 'web-1', uid: POD_UID },
    prevResult: BRIDGE_RESULT,
    ...overrides,
  };
}

export interface Exchange {
  /** The answer parsed, or undefined when the agent sent nothing parseable. */
  response: Record<string, unknown> | undefined;
  raw: string;
  ms: number;
}

/**
 * One exchange as the plugin does it: write, half-close, read to the end, close. With
 * `halfClose: false` the request is never finished (a slow or hostile peer).
 */
export function exchange(socket: string, body: string | Buffer, opts: { halfClose?: boolean } = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const conn = net.connect({ path: socket, allowHalfOpen: true });
    let raw = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => (raw += d));
    conn.on('error', reject);
    conn.on('end', () => conn.destroy());
    conn.on('close', () => {
      let response: Record<string, unknown> | undefined;
      try {
        response = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        response = undefined;
      }
      resolve({ response, raw, ms: Date.now() - started });
    });
    conn.on('connect', () => {
      if (opts.halfClose === false) conn.write(body);
      else conn.end(body);
    });
  });
}
