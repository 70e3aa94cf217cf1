/**
 * An agent's `flows` frame handed to the flow store as its bytes (collector/agent-session.ts):
 * the session reads only its envelope — the text an agent writes in front of the records
 * (agent/mesh/collector-client.ts sendFlows), `{"type":"flows","session":…,"seq":…,"lost":…,"flows":[` —
 * and the store's writer thread parses and validates the whole frame (parseMessage, the same
 * checks as every frame) before anything of it is stored. A frame that does not begin with that
 * text is parsed by the session as before.
 */
import { PalisadeError } from '../../common/errors';
import type { FlowRecord } from '../../common/flow';
import { parseMessage, type FlowsMessage } from '../../common/mesh-protocol';

/** Which batch a flows frame says it is, read from its first bytes. */
export interface FlowsEnvelope {
  session: string;
  seq: number;
  lost: number;
}

/** The envelope's text: session ids are 1-64 of [A-Za-z0-9._-] (mesh-protocol.ts requestId), counts at most 16 digits. */
const ENVELOPE_RE = /^\{"type":"flows","session":"([A-Za-z0-9._-]{1,64})","seq":(\d{1,16}),"lost":(\d{1,16}),"flows":\[/;
/** Longer than any envelope ENVELOPE_RE matches. */
const ENVELOPE_MAX_BYTES = 160;
const TIME_KEY = Buffer.from('"time":');

/** The envelope of a frame that begins as an agent's flows frame, or undefined (the frame is parsed whole). */
export function flowsEnvelope(frame: Buffer): FlowsEnvelope | undefined {
  const m = ENVELOPE_RE.exec(frame.toString('latin1', 0, Math.min(frame.length, ENVELOPE_MAX_BYTES)));
  if (!m) return undefined;
  const seq = Number(m[2]);
  const lost = Number(m[3]);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(lost)) return undefined;
  return { session: m[1]!, seq, lost };
}

/**
 * How many records the frame holds, counted without parsing it: its `"time":` keys (outside a
 * JSON string a quote is never escaped, inside one it always is; a record has one, at its top).
 * Exact for a valid frame; what it costs (frame budget, writer queue) until the thread has read it.
 */
export function countRecords(frame: Uint8Array): number {
  const b = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  let n = 0;
  for (let at = b.indexOf(TIME_KEY); at >= 0; at = b.indexOf(TIME_KEY, at + TIME_KEY.length)) n++;
  return n;
}

/** A flows frame refused as a whole: PALISADE_ERR_PROTOCOL; `wrongNode` when a record names another node. */
export class FlowsFrameRefusal extends PalisadeError {
  constructor(
    message: string,
    readonly wrongNode = false,
  ) {
    super('PALISADE_ERR_PROTOCOL', message);
  }
}

/**
 * The frame as the flows message it says it is, with every check a frame gets (parseMessage), its
 * envelope the one `expect` read, as many records as `counted` (countRecords: what the frame was
 * charged for; a frame written otherwise than an agent writes it could hide its records from that
 * count), and every record of `node`; throws FlowsFrameRefusal otherwise.
 */
export function readFlowsFrame(frame: Buffer, expect: FlowsEnvelope, node: string, counted?: number): FlowsMessage {
  let m: FlowsMessage;
  try {
    m = parseMessage(frame, ['flows']);
  } catch (err) {
    throw new FlowsFrameRefusal((err as Error).message);
  }
  if (m.session !== expect.session || m.seq !== expect.seq || m.lost !== expect.lost) {
    throw new FlowsFrameRefusal('flows: the frame names its session, seq or lost twice, with different values');
  }
  if (counted !== undefined && m.flows.length !== counted) {
    throw new FlowsFrameRefusal(`flows: ${m.flows.length} records written otherwise than an agent writes them (${counted} counted)`);
  }
  const problem = wrongNode(m.flows, node);
  if (problem) throw new FlowsFrameRefusal(problem, true);
  return m;
}

/** The problem with a batch for `node` that holds another node's record (one line), or undefined. */
export function wrongNode(flows: readonly FlowRecord[], node: string): string | undefined {
  for (let i = 0; i < flows.length; i++) {
    if (flows[i]!.node !== node) return `flows[${i}] names node ${JSON.stringify(String(flows[i]!.node).slice(0, 64))}, but this session is node ${node}`;
  }
  return undefined;
}
