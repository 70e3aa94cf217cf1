/**
 * An agent's `flows` frame handed to the flow store as its bytes (collector/agent-session.ts):
 * the session reads only its envelope — the text an agent writes in front of the records
 * (agent/mesh/collector-client.ts sendFlows), `{"type":"flows","session":…,"seq":…,"lost":…,"flows":[` —
 * and the store's writer thread parses and validates the whole frame (a piece of records at a
 * time, then checkMessage: the same checks as every frame) before anything of it is stored. A frame that does not begin with that
 * text is parsed by the session as before.
 */
import { PalisadeError } from '../../common/errors';
import type { FlowRecord } from '../../common/flow';
import { checkMessage, MAX_FRAME_BYTES, parseMessage, type FlowsMessage } from '../../common/mesh-protocol';

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
/** Between two records of an agent's frame. */
const NEXT_RECORD = Buffer.from(',{"time":');
const FRAME_END = Buffer.from(']}');
/**
 * Records are parsed a piece of about this many bytes at a time: a string past ~128 KiB is a V8
 * large object, and decoding a whole 500-record frame into one costs more than parsing it.
 */
const PIECE_BYTES = 32 * 1024;

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
    m = inPieces(frame, expect) ?? parseMessage(frame, ['flows']);
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

/**
 * A frame the writer thread already read and stored, read again for the listeners that ask for
 * its records (stored-batch.ts): in pieces as the thread read it, so it is never one large string.
 */
export function storedFrameMessage(frame: Buffer): FlowsMessage {
  const envelope = flowsEnvelope(frame);
  return (envelope && inPieces(frame, envelope)) ?? (JSON.parse(frame.toString('utf8')) as FlowsMessage);
}

/**
 * The frame's message when it is laid out as an agent writes it (its envelope, then records
 * `{"time":…}` joined by commas, then `]}`), parsed a piece of records at a time and checked as
 * parseMessage checks it (checkMessage); undefined for any other layout, or a piece that is not
 * JSON: the frame is then parsed whole. Each piece, between two record starts, is parsed as
 * `[piece]`: when every piece is a list of JSON values, the frame's records array is exactly
 * their concatenation, wherever the cuts fell.
 */
function inPieces(frame: Buffer, expect: FlowsEnvelope): FlowsMessage | undefined {
  if (frame.length > MAX_FRAME_BYTES) return undefined;
  const head = ENVELOPE_RE.exec(frame.toString('latin1', 0, Math.min(frame.length, ENVELOPE_MAX_BYTES)));
  // the envelope's numbers as JSON writes them (no leading zero): the frame is JSON where the regex matched
  if (!head || head[1] !== expect.session || head[2] !== String(expect.seq) || head[3] !== String(expect.lost)) return undefined;
  const end = frame.length - FRAME_END.length;
  if (end < head[0].length || frame.compare(FRAME_END, 0, FRAME_END.length, end) !== 0) return undefined;
  const flows: unknown[] = [];
  let from = head[0].length;
  const cut = (to: number): boolean => {
    let piece: unknown;
    try {
      piece = JSON.parse(`[${frame.toString('utf8', from, to)}]`);
    } catch {
      return false;
    }
    for (const f of piece as unknown[]) flows.push(f);
    from = to + 1;
    return true;
  };
  for (let at = frame.indexOf(NEXT_RECORD, from); at >= 0 && at < end; at = frame.indexOf(NEXT_RECORD, at + 1)) {
    if (at === from) return undefined; // an empty piece: `[,` is not JSON
    if (at - from >= PIECE_BYTES && !cut(at)) return undefined;
  }
  if (end === from ? flows.length > 0 : !cut(end)) return undefined;
  return checkMessage({ type: 'flows', session: expect.session, seq: expect.seq, lost: expect.lost, flows }, ['flows']);
}

/** The problem with a batch for `node` that holds another node's record (one line), or undefined. */
export function wrongNode(flows: readonly FlowRecord[], node: string): string | undefined {
  for (let i = 0; i < flows.length; i++) {
    if (flows[i]!.node !== node) return `flows[${i}] names node ${JSON.stringify(String(flows[i]!.node).slice(0, 64))}, but this session is node ${node}`;
  }
  return undefined;
}
