/**
 * The palisade-cni wire protocol: how the chained CNI plugin (native/cni/, C) asks the node agent
 * to enroll, unenroll or check a pod sandbox. Defined here, once; native/cni/protocol.h repeats
 * the version and the limits for the C side (a unit test keeps the two equal).
 *
 * Version 1.
 *
 * Transport: a SOCK_STREAM Unix socket, `<agent run dir>/cni.sock` (default
 * /run/palisade/cni.sock), mode 0600: only root (the container runtime) may connect.
 * One exchange per connection, no framing:
 *   1. the plugin connects, writes one request (a JSON object, UTF-8, at most MAX_REQUEST_BYTES)
 *      and shuts down its write side: end of stream ends the request;
 *   2. the agent checks it (parseCniRequest), acts (enroll / unenroll / check), writes one
 *      response (a JSON object, at most MAX_RESPONSE_BYTES) and closes.
 * The agent answers ADD only once the pod is enrolled (its first connect is redirected); the
 * plugin waits at most its configured timeout (default DEFAULT_PLUGIN_TIMEOUT_MS) for the whole
 * exchange, connect included, and fails ADD and CHECK with CNI code 11 (try again later) when the
 * agent is not there or too slow. DEL never fails the runtime: the plugin reports success whatever
 * the agent says (or if it says nothing), and the agent reconciles what it missed.
 *
 * Request:
 *   { "palisadeCni": 1,
 *     "command": "ADD" | "DEL" | "CHECK",
 *     "cniVersion": "1.0.0",                 the network configuration's version
 *     "network": "k8s-pod-network",          the configuration's `name`
 *     "containerId": "…",                    CNI_CONTAINERID
 *     "netns": "/var/run/netns/cni-…",       CNI_NETNS ("" allowed for DEL only)
 *     "ifName": "eth0",                      CNI_IFNAME
 *     "pod": { "namespace": "…", "name": "…", "uid": "…" },   from CNI_ARGS K8S_POD_*; uid may be
 *                                            "", and for DEL all three may be ""
 *     "prevResult": { … } }                  the previous plugin's result, verbatim; required for
 *                                            ADD and CHECK, optional for DEL
 * Response:
 *   { "palisadeCni": 1, "ok": true }
 *   { "palisadeCni": 1, "ok": false, "code": <CNI error code>, "msg": "<one line>" }
 * The plugin prints a refusal as the CNI error `{"cniVersion":…,"code":…,"msg":…}`.
 */
import { posix } from 'node:path';

/** The protocol version both sides put in `palisadeCni`. An agent refuses any other. */
export const CNI_PROTOCOL_VERSION = 1;
/** The socket's file name inside the agent's run directory. */
export const CNI_SOCKET_NAME = 'cni.sock';

/** Where the agent with run directory `runDir` serves palisade-cni. */
export function cniSocketPath(runDir: string): string {
  return posix.join(runDir, CNI_SOCKET_NAME);
}
/** Largest request the agent reads (a prevResult is a few hundred bytes; configs stay small). */
export const MAX_REQUEST_BYTES = 96 * 1024;
/** Largest response the plugin reads. */
export const MAX_RESPONSE_BYTES = 4096;
/** Largest network configuration the plugin reads from stdin. */
export const MAX_CONFIG_BYTES = 64 * 1024;
/**
 * The plugin's default wait for the agent's answer, connect included (`timeoutMs` in its config).
 * 3 s, not istio-cni's 1 s: an agent that must first fetch a pod it has not seen yet makes one API
 * GET, whose p99 the Kubernetes SLO puts at 1 s, on top of its own work (netns, maps) on a busy
 * node; a timeout that fires there costs a torn-down sandbox and a kubelet back-off, while a longer
 * one costs only when the agent is up but stuck. An agent that is down is detected at once
 * (nothing listens), whatever the timeout. Kubelet's own sandbox timeout is minutes.
 */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 3000;
/** The longest `msg` the agent sends (the plugin would cut it there too). */
export const MAX_MESSAGE_CHARS = 512;

export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

/** CNI versions the plugin declares (VERSION) and the agent accepts: results with an `ips` list. */
export const CNI_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;

/**
 * CNI error codes. 1–99 are the spec's (CNI 1.0.0, "Error"); 100+ are Palisade's own.
 * The plugin uses the same numbers for the errors it finds itself.
 */
export const CniErrorCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENVIRONMENT: 4,
  IO_FAILURE: 5,
  DECODE_FAILED: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  /** The agent could not enroll the pod (the message says why). */
  ENROLL_FAILED: 100,
  /** CHECK: the pod is not (or no longer) in the mesh. */
  NOT_ENROLLED: 101,
  /** The two sides do not speak the same protocol, or an answer was malformed. */
  PROTOCOL: 102,
} as const;
export type CniErrorCodeValue = (typeof CniErrorCode)[keyof typeof CniErrorCode];

/** A pod as CNI_ARGS name it. */
export interface CniPodRef {
  namespace: string;
  name: string;
  /** K8S_POD_UID; undefined when the runtime did not pass it. */
  uid: string | undefined;
}

/** One address the previous plugins gave the pod. */
export interface CniPodIp {
  family: 4 | 6;
  /** Canonical form: dotted quad, or RFC 5952 IPv6. */
  address: string;
  prefixLength: number;
  gateway: string | undefined;
  /** Name of the interface it is on (from prevResult.interfaces), when the result says. */
  interface: string | undefined;
}

/** An interface of the previous result: `sandbox` set means it is inside the pod's netns. */
export interface CniInterface {
  name: string;
  mac: string | undefined;
  sandbox: string | undefined;
}

/** What the agent is asked about one pod sandbox, validated. */
export interface CniSandbox {
  containerId: string;
  /** Absolute path of the pod's network namespace; '' only on DEL (the runtime may omit it). */
  netns: string;
  ifName: string;
  network: string;
  cniVersion: string;
  /** Undefined only on DEL, when the runtime passed no K8S_POD_* arguments. */
  pod: CniPodRef | undefined;
  /** The pod's own addresses (those on interfaces inside its netns). Never empty on ADD and CHECK. */
  ips: CniPodIp[];
  interfaces: CniInterface[];
}

export interface CniRequest {
  command: CniCommand;
  sandbox: CniSandbox;
}

export interface CniResponseOk {
  palisadeCni: typeof CNI_PROTOCOL_VERSION;
  ok: true;
}

export interface CniResponseError {
  palisadeCni: typeof CNI_PROTOCOL_VERSION;
  ok: false;
  code: number;
  msg: string;
}

export type CniResponse = CniResponseOk | CniResponseError;

/** What the agent implements to serve the socket. Each promise settles when the work is done. */
export interface CniEnroller {
  /** Enroll the pod: resolve only once its traffic is redirected into the mesh. */
  enroll(sandbox: CniSandbox): Promise<void>;
  /** Take the pod out (its sandbox is going away). Failures are logged, never returned to the runtime. */
  unenroll(sandbox: CniSandbox): Promise<void>;
  /** Resolve if the pod is enrolled as it should be; reject (with the reason) if not. */
  check(sandbox: CniSandbox): Promise<void>;
}

/**
 * An enroller's refusal with a CNI code of its choosing (e.g. TRY_AGAIN_LATER while the pod is
 * not yet known). Any other rejection becomes ENROLL_FAILED (ADD) or NOT_ENROLLED (CHECK).
 */
export class CniRefusal extends Error {
  constructor(
    readonly cniCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'CniRefusal';
  }
}

/** The one line the agent sends back: no control characters, at most MAX_MESSAGE_CHARS. */
export function oneLineMessage(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length <= MAX_MESSAGE_CHARS ? flat : `${flat.slice(0, MAX_MESSAGE_CHARS - 1)}…`;
}

export function okResponse(): CniResponseOk {
  return { palisadeCni: CNI_PROTOCOL_VERSION, ok: true };
}

export function errorResponse(code: number, msg: string): CniResponseError {
  return { palisadeCni: CNI_PROTOCOL_VERSION, ok: false, code, msg: oneLineMessage(msg) };
}
