/**
 * Strict reading of the two DNS messages the proxy handles: a pod's query (exactly one question,
 * no answer or authority records, at most an EDNS OPT record, nothing after it) and an upstream
 * server's response (one question, records whose counts fit the message, A/AAAA/CNAME/SOA data
 * of the sizes RFC 1035 and 3596 fix). Names and bounds are checked by wire.ts; here every record
 * must end exactly where its length says. A message that breaks a rule is a DnsFormatError.
 */
import { CLASS_IN, DnsFormatError, HEADER_SIZE, readHeader, readName, skipName, TYPE, type Header } from './wire';

/** A record needs at least a root name (1 byte) and type, class, TTL and length (10). */
const MIN_RR = 11;
/** CNAME hops followed from the question's name; a longer chain is answered but not believed. */
export const MAX_CNAME_CHAIN = 8;

export interface Question {
  /** Presentation form, lowercase (wire.ts). */
  name: string;
  type: number;
  qclass: number;
  /** The question's bytes in the message: [start, end). */
  start: number;
  end: number;
}

export interface Edns {
  /** The requester's UDP payload size (at least 512). */
  udpSize: number;
  /** DNSSEC OK */
  dnssecOk: boolean;
}

export interface Query {
  header: Header;
  question: Question;
  edns: Edns | undefined;
}

function fail(what: string): never {
  throw new DnsFormatError(what);
}

function readQuestion(msg: Buffer): Question {
  const start = HEADER_SIZE;
  const { end: nameEnd, name } = readName(msg, start);
  if (nameEnd + 4 > msg.length) fail('question cut short');
  return { name, type: msg.readUInt16BE(nameEnd), qclass: msg.readUInt16BE(nameEnd + 2), start, end: nameEnd + 4 };
}

/** Records the counts promise must fit what is left of the message. */
function checkCounts(msg: Buffer, from: number, count: number): void {
  if (count * MIN_RR > msg.length - from) fail(`${count} records cannot fit in ${msg.length - from} bytes`);
}

/** A query from a pod. The caller decides what to answer about opcode, class and type. */
export function parseQuery(msg: Buffer): Query {
  const header = readHeader(msg);
  if (header.flags & 0x8000) fail('a response, not a query');
  if (header.qdcount !== 1) fail(`${header.qdcount} questions (exactly one is answered)`);
  if (header.ancount !== 0 || header.nscount !== 0) fail('a query with answer or authority records');
  if (header.arcount > 1) fail(`${header.arcount} additional records (only an EDNS OPT record is accepted)`);
  const question = readQuestion(msg);
  let pos = question.end;
  let edns: Edns | undefined;
  if (header.arcount === 1) {
    checkCounts(msg, pos, 1);
    if (msg[pos] !== 0) fail('additional record is not an EDNS OPT record at the root');
    const rr = readRecordHead(msg, pos + 1);
    if (rr.type !== TYPE.OPT) fail('additional record is not an EDNS OPT record');
    // class = UDP payload size; TTL = extended rcode (8), version (8), DO (1), zero (15)
    if (((rr.ttl >>> 16) & 0xff) !== 0) fail('EDNS version other than 0');
    edns = { udpSize: Math.max(512, rr.qclass), dnssecOk: (rr.ttl & 0x8000) !== 0 };
    pos = rr.rdataEnd;
  }
  if (pos !== msg.length) fail(`${msg.length - pos} bytes after the last record`);
  return { header, question, edns };
}

interface RecordHead {
  type: number;
  qclass: number;
  ttl: number;
  ttlOffset: number;
  rdataStart: number;
  rdataEnd: number;
}

/** Type, class, TTL and data bounds of the record whose fixed part starts at `pos`. */
function readRecordHead(msg: Buffer, pos: number): RecordHead {
  if (pos + 10 > msg.length) fail('record cut short');
  const rdataStart = pos + 10;
  const rdataEnd = rdataStart + msg.readUInt16BE(pos + 8);
  if (rdataEnd > msg.length) fail('record data runs past the end of the message');
  return { type: msg.readUInt16BE(pos), qclass: msg.readUInt16BE(pos + 2), ttl: msg.readUInt32BE(pos + 4), ttlOffset: pos + 4, rdataStart, rdataEnd };
}

/** One answer-section record of a type the proxy reads (A, AAAA, CNAME). */
export interface AnswerRecord {
  owner: string;
  type: number;
  ttl: number;
  /** the address (A, AAAA) or the target name (CNAME) */
  data: string;
}

export interface Response {
  header: Header;
  question: Question;
  /** A/AAAA/CNAME records of class IN in the answer section, in order. */
  answers: AnswerRecord[];
  /** Records of every other type in the answer section. */
  otherAnswers: number;
  /** Offsets of the TTL of every answer and authority record. */
  ttlOffsets: number[];
  /** Smallest TTL of the answer section (undefined without answers). */
  minAnswerTtl: number | undefined;
  /** RFC 2308 §5: min(SOA TTL, SOA MINIMUM) of an SOA in the authority section. */
  negativeTtl: number | undefined;
  /** Where the additional section starts: a response cut here is whole without it. */
  additionalStart: number;
}

/** A response from an upstream server. */
export function parseResponse(msg: Buffer): Response {
  const header = readHeader(msg);
  if (!(header.flags & 0x8000)) fail('a query, not a response');
  if (header.qdcount !== 1) fail(`${header.qdcount} questions in a response`);
  const question = readQuestion(msg);
  let pos = question.end;
  checkCounts(msg, pos, header.ancount + header.nscount + header.arcount);
  const answers: AnswerRecord[] = [];
  const ttlOffsets: number[] = [];
  let otherAnswers = 0;
  let minAnswerTtl: number | undefined;
  for (let i = 0; i < header.ancount; i++) {
    const owner = readName(msg, pos);
    const rr = readRecordHead(msg, owner.end);
    ttlOffsets.push(rr.ttlOffset);
    minAnswerTtl = minAnswerTtl === undefined ? rr.ttl : Math.min(minAnswerTtl, rr.ttl);
    const data = rr.qclass === CLASS_IN ? recordData(msg, rr) : undefined;
    if (data === undefined) otherAnswers++;
    else answers.push({ owner: owner.name, type: rr.type, ttl: rr.ttl, data });
    pos = rr.rdataEnd;
  }
  let negativeTtl: number | undefined;
  for (let i = 0; i < header.nscount; i++) {
    const rr = readRecordHead(msg, skipName(msg, pos));
    ttlOffsets.push(rr.ttlOffset);
    if (rr.type === TYPE.SOA) {
      const minimum = soaMinimum(msg, rr);
      negativeTtl = Math.min(negativeTtl ?? Infinity, rr.ttl, minimum);
    }
    pos = rr.rdataEnd;
  }
  const additionalStart = pos;
  for (let i = 0; i < header.arcount; i++) pos = readRecordHead(msg, skipName(msg, pos)).rdataEnd;
  if (pos !== msg.length) fail(`${msg.length - pos} bytes after the last record`);
  return { header, question, answers, otherAnswers, ttlOffsets, minAnswerTtl, negativeTtl, additionalStart };
}

function recordData(msg: Buffer, rr: RecordHead): string | undefined {
  const len = rr.rdataEnd - rr.rdataStart;
  const at = rr.rdataStart;
  switch (rr.type) {
    case TYPE.A:
      if (len !== 4) fail(`A record of ${len} bytes`);
      return `${msg[at]}.${msg[at + 1]}.${msg[at + 2]}.${msg[at + 3]}`;
    case TYPE.AAAA: {
      if (len !== 16) fail(`AAAA record of ${len} bytes`);
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(msg.readUInt16BE(at + i).toString(16));
      return groups.join(':');
    }
    case TYPE.CNAME: {
      const target = readName(msg, at);
      if (target.end !== rr.rdataEnd) fail('CNAME data is not exactly one name');
      return target.name;
    }
    default:
      return undefined;
  }
}

function soaMinimum(msg: Buffer, rr: RecordHead): number {
  const afterNames = skipName(msg, skipName(msg, rr.rdataStart));
  if (afterNames + 20 !== rr.rdataEnd) fail('SOA data is not two names and five numbers');
  return msg.readUInt32BE(afterNames + 16);
}

/**
 * The addresses the question's name leads to: its own A/AAAA records and those at the end of
 * its CNAME chain (at most MAX_CNAME_CHAIN hops), each with its TTL; records about any other
 * name in the answer are ignored (an upstream cannot vouch for names it was not asked about).
 * `names` lists every name of the chain (the question's first).
 */
export function chainAddresses(question: string, answers: readonly AnswerRecord[]): { names: string[]; addresses: Array<{ ip: string; ttl: number }> } {
  const names = [question];
  const addresses: Array<{ ip: string; ttl: number }> = [];
  let current = question;
  for (let hop = 0; hop <= MAX_CNAME_CHAIN; hop++) {
    let next: string | undefined;
    for (const a of answers) {
      if (a.owner !== current) continue;
      if (a.type === TYPE.CNAME) next ??= a.data;
      else addresses.push({ ip: a.data, ttl: a.ttl });
    }
    if (next === undefined || names.includes(next) || hop === MAX_CNAME_CHAIN) break;
    names.push(next);
    current = next;
  }
  return { names, addresses };
}
