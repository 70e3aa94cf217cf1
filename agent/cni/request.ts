/**
 * The boundary of the CNI socket: one request's bytes become a validated `CniRequest`, or a
 * refusal with a CNI error code and a one-line reason. Pure; nothing here touches a namespace.
 * The protocol itself is described in ./protocol.ts.
 */
import { posix } from 'node:path';
import { isDnsLabel } from '../../common/identity';
import { isDnsSubdomain } from '../../common/labels';
import { formatIp, IpAddr, parseIpInto } from '../../common/policy/ip';
import { isRecord } from '../../common/record';
import {
  CNI_COMMANDS,
  CNI_PROTOCOL_VERSION,
  CNI_VERSIONS,
  CniErrorCode,
  MAX_REQUEST_BYTES,
  type CniCommand,
  type CniInterface,
  type CniPodIp,
  type CniPodRef,
  type CniRequest,
} from './protocol';

export type ParsedCniRequest = { ok: true; request: CniRequest } | { ok: false; code: number; reason: string };

const REQUEST_FIELDS = ['palisadeCni', 'command', 'cniVersion', 'network', 'containerId', 'netns', 'ifName', 'pod', 'prevResult'];
const POD_FIELDS = ['namespace', 'name', 'uid'];
/** CNI 1.0.0: container IDs and network names start alphanumeric, then alphanumerics, '_', '.', '-'. */
const CNI_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MAX_ID_CHARS = 256;
const PATH_MAX = 4096;
/** Linux IFNAMSIZ - 1. */
const IFNAME_MAX = 15;
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** More addresses or interfaces than any real pod has: refused rather than iterated. */
const MAX_RESULT_ENTRIES = 64;
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5,19}$/;

/** A refusal found while parsing; thrown inside this module only, returned as a value. */
class Refused extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function refuse(code: number, message: string): never {
  throw new Refused(code, message);
}

/** JSON.stringify that cuts long hostile values, for messages. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length <= 80 ? text : `${text.slice(0, 77)}...`;
}

/** Check one request's bytes. Every refusal is one line; nothing is acted on unless `ok`. */
export function parseCniRequest(body: Uint8Array): ParsedCniRequest {
  try {
    return { ok: true, request: parse(body) };
  } catch (err) {
    if (err instanceof Refused) return { ok: false, code: err.code, reason: err.message };
    throw err;
  }
}

function parse(body: Uint8Array): CniRequest {
  if (body.length > MAX_REQUEST_BYTES) refuse(CniErrorCode.PROTOCOL, `request larger than ${MAX_REQUEST_BYTES} bytes`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    refuse(CniErrorCode.DECODE_FAILED, 'request is not UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    refuse(CniErrorCode.DECODE_FAILED, `request is not JSON (${(err as Error).message})`);
  }
  if (!isRecord(value)) refuse(CniErrorCode.PROTOCOL, `request must be a JSON object, got ${show(value)}`);
  // The version first: a newer plugin gets "upgrade the agent", not "unknown field".
  if (value.palisadeCni !== CNI_PROTOCOL_VERSION) {
    refuse(CniErrorCode.PROTOCOL, `palisade-cni protocol version ${show(value.palisadeCni)} is not supported (this agent speaks ${CNI_PROTOCOL_VERSION}): install the palisade-cni of the agent's release`);
  }
  for (const key of Object.keys(value)) {
    if (!REQUEST_FIELDS.includes(key)) refuse(CniErrorCode.PROTOCOL, `unknown request field ${show(key)}`);
  }
  const command = value.command;
  if (typeof command !== 'string' || !(CNI_COMMANDS as readonly string[]).includes(command)) {
    refuse(CniErrorCode.PROTOCOL, `command must be one of ${CNI_COMMANDS.join(', ')}, got ${show(command)}`);
  }
  const cmd = command as CniCommand;
  const cniVersion = value.cniVersion;
  if (typeof cniVersion !== 'string' || !(CNI_VERSIONS as readonly string[]).includes(cniVersion)) {
    refuse(CniErrorCode.INCOMPATIBLE_VERSION, `cniVersion ${show(cniVersion)} is not supported (use one of ${CNI_VERSIONS.join(', ')})`);
  }
  const network = cniId(value.network, 'network name (the configuration\'s "name")', CniErrorCode.INVALID_CONFIG);
  const containerId = cniId(value.containerId, 'CNI_CONTAINERID', CniErrorCode.INVALID_ENVIRONMENT);
  const netns = netnsPath(value.netns, cmd);
  const ifName = interfaceName(value.ifName, 'CNI_IFNAME', CniErrorCode.INVALID_ENVIRONMENT);
  const pod = podRef(value.pod, cmd);
  const prev = prevResult(value.prevResult, cmd);
  return { command: cmd, sandbox: { containerId, netns, ifName, network, cniVersion, pod, ips: prev.ips, interfaces: prev.interfaces } };
}

function cniId(value: unknown, what: string, code: number): string {
  if (typeof value !== 'string' || value === '') refuse(code, `${what} is missing`);
  if (value.length > MAX_ID_CHARS || !CNI_ID_RE.test(value)) {
    refuse(code, `${what} ${show(value)} is invalid (letters, digits, '_', '.', '-', starting with a letter or digit, at most ${MAX_ID_CHARS})`);
  }
  return value;
}

function netnsPath(value: unknown, cmd: CniCommand): string {
  if (typeof value !== 'string') refuse(CniErrorCode.PROTOCOL, `netns must be a string, got ${show(value)}`);
  if (value === '') {
    if (cmd === 'DEL') return '';
    refuse(CniErrorCode.INVALID_ENVIRONMENT, `CNI_NETNS is missing (${cmd} needs the pod's network namespace)`);
  }
  const clean = value.length <= PATH_MAX && !/[\u0000-\u001f\u007f]/.test(value);
  if (!clean || !value.startsWith('/') || posix.normalize(value) !== value || value.endsWith('/')) {
    refuse(CniErrorCode.INVALID_ENVIRONMENT, `CNI_NETNS ${show(value)} is not a normalized absolute path`);
  }
  return value;
}

function interfaceName(value: unknown, what: string, code: number): string {
  if (typeof value !== 'string' || value === '') refuse(code, `${what} is missing`);
  if (value.length > IFNAME_MAX || value === '.' || value === '..' || /[/:\s]/.test(value) || /[^\x21-\x7e]/.test(value)) {
    refuse(code, `${what} ${show(value)} is not an interface name (1-${IFNAME_MAX} printable characters, no '/', ':' or spaces)`);
  }
  return value;
}

function podRef(value: unknown, cmd: CniCommand): CniPodRef | undefined {
  if (!isRecord(value)) refuse(CniErrorCode.PROTOCOL, `pod must be an object, got ${show(value)}`);
  for (const key of Object.keys(value)) {
    if (!POD_FIELDS.includes(key)) refuse(CniErrorCode.PROTOCOL, `unknown pod field ${show(key)}`);
  }
  const { namespace, name, uid } = value;
  if (typeof namespace !== 'string' || typeof name !== 'string' || typeof uid !== 'string') {
    refuse(CniErrorCode.PROTOCOL, 'pod namespace, name and uid must be strings ("" when absent)');
  }
  if (cmd === 'DEL' && namespace === '' && name === '' && uid === '') return undefined;
  if (!isDnsLabel(namespace)) {
    const got = namespace === '' ? 'missing' : `${show(namespace)} is not a namespace name`;
    refuse(CniErrorCode.INVALID_ENVIRONMENT, `CNI_ARGS K8S_POD_NAMESPACE ${got} (palisade-cni serves Kubernetes pods only)`);
  }
  if (!isDnsSubdomain(name)) {
    const got = name === '' ? 'missing' : `${show(name)} is not a pod name`;
    refuse(CniErrorCode.INVALID_ENVIRONMENT, `CNI_ARGS K8S_POD_NAME ${got}`);
  }
  if (uid !== '' && !UUID_RE.test(uid)) refuse(CniErrorCode.INVALID_ENVIRONMENT, `CNI_ARGS K8S_POD_UID ${show(uid)} is not a UID`);
  return { namespace, name, uid: uid === '' ? undefined : uid.toLowerCase() };
}

function prevResult(value: unknown, cmd: CniCommand): { ips: CniPodIp[]; interfaces: CniInterface[] } {
  if (value === undefined) {
    if (cmd === 'DEL') return { ips: [], interfaces: [] };
    refuse(CniErrorCode.INVALID_CONFIG, `${cmd} needs prevResult: palisade-cni is a chained plugin and must come after the plugin that gives the pod its address`);
  }
  if (!isRecord(value)) refuse(CniErrorCode.INVALID_CONFIG, `prevResult must be an object, got ${show(value)}`);
  const interfaces = listOf(value.interfaces, 'prevResult.interfaces').map(resultInterface);
  const ips = listOf(value.ips, 'prevResult.ips').flatMap((entry, i) => podIp(entry, i, interfaces));
  if (ips.length === 0 && cmd !== 'DEL') {
    refuse(CniErrorCode.INVALID_CONFIG, 'prevResult gives the pod no address (no "ips" entry on an interface inside the pod): palisade-cni must come after the plugin that assigns it');
  }
  return { ips, interfaces };
}

function listOf(value: unknown, what: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) refuse(CniErrorCode.INVALID_CONFIG, `${what} must be a list, got ${show(value)}`);
  if (value.length > MAX_RESULT_ENTRIES) refuse(CniErrorCode.INVALID_CONFIG, `${what} has ${value.length} entries (at most ${MAX_RESULT_ENTRIES})`);
  return value;
}

function optionalString(entry: Record<string, unknown>, key: string, what: string): string | undefined {
  const v = entry[key];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || v.length > PATH_MAX) refuse(CniErrorCode.INVALID_CONFIG, `${what}.${key} must be a string, got ${show(v)}`);
  return v;
}

function resultInterface(entry: unknown, i: number): CniInterface {
  const what = `prevResult.interfaces[${i}]`;
  if (!isRecord(entry)) refuse(CniErrorCode.INVALID_CONFIG, `${what} must be an object, got ${show(entry)}`);
  const name = interfaceName(entry.name, `${what}.name`, CniErrorCode.INVALID_CONFIG);
  const mac = optionalString(entry, 'mac', what);
  if (mac !== undefined && !MAC_RE.test(mac)) refuse(CniErrorCode.INVALID_CONFIG, `${what}.mac ${show(mac)} is not a MAC address`);
  return { name, mac: mac?.toLowerCase(), sandbox: optionalString(entry, 'sandbox', what) };
}

/** The entry as a pod address, or nothing when it is on an interface outside the pod (a host veth). */
function podIp(entry: unknown, i: number, interfaces: CniInterface[]): CniPodIp[] {
  const what = `prevResult.ips[${i}]`;
  if (!isRecord(entry)) refuse(CniErrorCode.INVALID_CONFIG, `${what} must be an object, got ${show(entry)}`);
  const address = entry.address;
  if (typeof address !== 'string') refuse(CniErrorCode.INVALID_CONFIG, `${what}.address is missing`);
  const parsed = addressWithPrefix(address);
  if (!parsed) refuse(CniErrorCode.INVALID_CONFIG, `${what}.address ${show(address)} is not an address with a prefix length (10.22.0.5/16, fd00::5/64)`);
  const gatewayText = optionalString(entry, 'gateway', what);
  let gateway: string | undefined;
  if (gatewayText !== undefined) {
    const gw = new IpAddr();
    if (!parseIpInto(gatewayText, gw) || gw.mapped || (gw.v6 ? 6 : 4) !== parsed.family) {
      refuse(CniErrorCode.INVALID_CONFIG, `${what}.gateway ${show(gatewayText)} is not an IPv${parsed.family} address`);
    }
    gateway = formatIp(gw);
  }
  let ifaceName: string | undefined;
  if (entry.interface !== undefined) {
    const index = entry.interface;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= interfaces.length) {
      refuse(CniErrorCode.INVALID_CONFIG, `${what}.interface ${show(index)} is not an index into prevResult.interfaces (0-${interfaces.length - 1})`);
    }
    const iface = interfaces[index]!;
    if (iface.sandbox === undefined) return []; // an address on the host side
    ifaceName = iface.name;
  }
  return [{ ...parsed, gateway, interface: ifaceName }];
}

function addressWithPrefix(text: string): { family: 4 | 6; address: string; prefixLength: number } | undefined {
  const slash = text.indexOf('/');
  if (slash === -1) return undefined;
  const ip = new IpAddr();
  if (!parseIpInto(text.slice(0, slash), ip) || ip.mapped) return undefined;
  const len = text.slice(slash + 1);
  const max = ip.v6 ? 128 : 32;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(len) || Number(len) > max) return undefined;
  return { family: ip.v6 ? 6 : 4, address: formatIp(ip), prefixLength: Number(len) };
}
