/**
 * The mesh CA: one RSA key (`ca.key`, mode 0600) and one self-signed certificate (`ca.crt`) in
 * the collector's data directory, created on first start. It signs node, workload and server
 * certificates; every name in an issued certificate comes from the caller's options.
 */
import { constants, createPrivateKey, generateKeyPairSync, privateEncrypt, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import forge from 'node-forge';
import { writeFileAtomic } from '../common/atomic-file';
import { invalidArgument, PalisadeError, type PalisadeErrorCode } from '../common/errors';
import { isTrustDomain, parseSpiffeId } from '../common/identity';
import type { Logger } from '../common/log';
import { isSpecificIp, parseNodeSpiffeId, readCsr, RSA_BITS } from '../common/pki';

export interface SignOptions {
  /** The one URI SAN: a workload or node SPIFFE ID in this CA's trust domain. */
  uri?: string;
  dnsNames?: string[];
  ips?: string[];
  ttlSeconds: number;
  usage: 'workload' | 'node' | 'server';
  /** Defaults to now minus CLOCK_SKEW_SECONDS. */
  notBefore?: Date;
  /** Subject CN; without one the subject is empty and the SAN extension is critical (RFC 5280). */
  commonName?: string;
}

/** How far back issued certificates start, so peers with a slightly slow clock accept them. */
export const CLOCK_SKEW_SECONDS = 60;
const CA_VALIDITY_YEARS = 10;
const CA_CN_PREFIX = 'Palisade mesh CA ';

const EXT_KEY_USAGE: Record<SignOptions['usage'], { serverAuth?: boolean; clientAuth?: boolean }> = {
  workload: { serverAuth: true, clientAuth: true },
  node: { clientAuth: true },
  server: { serverAuth: true },
};

export class CertificateAuthority {
  readonly certPem: string;
  readonly trustDomain: string;
  /** Signs with OpenSSL: forge's pure-JS RSA took ~20 ms per certificate on the collector's thread. */
  private readonly signer: { sign(md: forge.md.MessageDigest): string };
  private readonly cert: forge.pki.Certificate;
  private readonly keyId: string;

  private constructor(trustDomain: string, keyPem: string, certPem: string) {
    this.trustDomain = trustDomain;
    this.certPem = certPem;
    this.signer = nativeRsaSigner(createPrivateKey(keyPem));
    this.cert = forge.pki.certificateFromPem(certPem);
    this.keyId = this.cert.generateSubjectKeyIdentifier().getBytes();
  }

  /**
   * Load `ca.key` + `ca.crt` from `dataDir`, or create both when neither exists. Refuses (one
   * line, PALISADE_ERR_DATA_DIR) a key readable by group/others, a lone key or certificate, a
   * pair that does not match, and a CA this collector created for another trust domain.
   */
  static loadOrCreate(dataDir: string, trustDomain: string, log?: Logger): CertificateAuthority {
    if (!isTrustDomain(trustDomain)) {
      throw invalidArgument(`invalid trust domain ${JSON.stringify(trustDomain)}`);
    }
    const keyPath = path.join(dataDir, 'ca.key');
    const certPath = path.join(dataDir, 'ca.crt');
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot create data directory ${dataDir}: ${(err as Error).message}`, { cause: err });
    }
    const haveKey = existsSync(keyPath);
    const haveCert = existsSync(certPath);
    if (!haveKey && !haveCert) {
      const ca = CertificateAuthority.create(trustDomain, keyPath, certPath);
      log?.info({ dataDir, fingerprint256: new X509Certificate(ca.certPem).fingerprint256 }, 'mesh CA created');
      return ca;
    }
    if (!haveKey || !haveCert) {
      throw new PalisadeError(
        'PALISADE_ERR_DATA_DIR',
        `${haveKey ? certPath : keyPath} is missing but ${haveKey ? keyPath : certPath} exists: restore it or remove both to create a new CA`,
      );
    }
    const ca = CertificateAuthority.load(trustDomain, keyPath, certPath);
    log?.info({ dataDir, fingerprint256: new X509Certificate(ca.certPem).fingerprint256 }, 'mesh CA loaded');
    return ca;
  }

  private static load(trustDomain: string, keyPath: string, certPath: string): CertificateAuthority {
    const st = lstatSync(keyPath);
    if (!st.isFile()) throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${keyPath} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${keyPath} has mode ${mode}, refusing a CA key others can read: chmod 600 it`);
    }
    const keyPem = readFileSync(keyPath, 'utf8');
    const certPem = readFileSync(certPath, 'utf8');
    return CertificateAuthority.fromPem(trustDomain, keyPem, certPem, { key: keyPath, cert: certPath, where: `the CA in ${path.dirname(certPath)}` }, 'PALISADE_ERR_DATA_DIR');
  }

  /**
   * A CA from its key and certificate PEM (a data directory's files, a Kubernetes Secret's keys):
   * refuses (one line, `code`) a pair that does not match, a certificate that is not a CA, and a
   * CA created for another trust domain. `names` say where each came from, for that line.
   */
  static fromPem(
    trustDomain: string,
    keyPem: string,
    certPem: string,
    names: { key: string; cert: string; where: string },
    code: PalisadeErrorCode,
  ): CertificateAuthority {
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(certPem);
      if (!x509.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('key does not match');
    } catch (err) {
      throw new PalisadeError(code, `${names.key} and ${names.cert} are not a matching key and certificate`, { cause: err });
    }
    if (!x509.ca) throw new PalisadeError(code, `${names.cert} is not a CA certificate`);
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(x509.subject)?.[1] ?? '';
    if (cn.startsWith(CA_CN_PREFIX) && cn !== `${CA_CN_PREFIX}${trustDomain}`) {
      throw new PalisadeError(code, `${names.where} was created for trust domain ${cn.slice(CA_CN_PREFIX.length)}, not ${trustDomain}`);
    }
    try {
      return new CertificateAuthority(trustDomain, keyPem, certPem);
    } catch (err) {
      throw new PalisadeError(code, `${names.key}: not an RSA CA key`, { cause: err });
    }
  }

  private static create(trustDomain: string, keyPath: string, certPath: string): CertificateAuthority {
    const { keyPem, certPem } = newCaPem(trustDomain);
    writeFileAtomic(keyPath, keyPem, 0o600);
    writeFileAtomic(certPath, certPem, 0o644);
    return new CertificateAuthority(trustDomain, keyPem, certPem);
  }

  /** Verify a CSR's own signature and sign its key with the names in `opts` (never the CSR's). */
  signCsr(csrPem: string, opts: SignOptions): string {
    return this.issue(readCsr(csrPem).publicKeyPem, opts);
  }

  /** Sign `publicKeyPem` (SPKI PEM, RSA) with the names in `opts`; returns the PEM certificate. */
  issue(publicKeyPem: string, opts: SignOptions): string {
    this.checkOptions(opts);
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
    cert.serialNumber = randomSerialHex();
    const now = Date.now();
    const notAfter = Math.min(now + opts.ttlSeconds * 1000, this.cert.validity.notAfter.getTime());
    cert.validity.notBefore = opts.notBefore ?? new Date(now - CLOCK_SKEW_SECONDS * 1000);
    cert.validity.notAfter = new Date(notAfter);
    cert.setSubject(opts.commonName === undefined ? [] : [{ name: 'commonName', value: opts.commonName }]);
    cert.setIssuer(this.cert.subject.attributes);
    const altNames: Array<{ type: number; value?: string; ip?: string }> = [];
    if (opts.uri !== undefined) altNames.push({ type: 6, value: opts.uri });
    for (const dns of opts.dnsNames ?? []) altNames.push({ type: 2, value: dns });
    for (const ip of opts.ips ?? []) altNames.push({ type: 7, ip });
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', ...EXT_KEY_USAGE[opts.usage] },
      { name: 'subjectAltName', altNames, critical: opts.commonName === undefined },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.keyId },
    ]);
    cert.sign(this.signer as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
    return forge.pki.certificateToPem(cert);
  }

  private checkOptions(opts: SignOptions): void {
    const bad = (why: string): PalisadeError => invalidArgument(`cannot issue certificate: ${why}`);
    if (!Number.isSafeInteger(opts.ttlSeconds) || opts.ttlSeconds <= 0) throw bad(`ttl ${opts.ttlSeconds} is not a positive number of seconds`);
    if (opts.uri === undefined && !opts.dnsNames?.length && !opts.ips?.length) throw bad('no subject alternative name');
    if (opts.uri !== undefined) {
      const td = parseSpiffeId(opts.uri)?.trustDomain ?? parseNodeSpiffeId(opts.uri)?.trustDomain;
      if (td !== this.trustDomain) throw bad(`${opts.uri} is not a SPIFFE ID in trust domain ${this.trustDomain}`);
      if (opts.usage === 'workload' && !parseSpiffeId(opts.uri)) throw bad(`${opts.uri} is not a workload identity`);
      if (opts.usage === 'node' && !parseNodeSpiffeId(opts.uri)) throw bad(`${opts.uri} is not a node identity`);
    }
    for (const ip of opts.ips ?? []) if (!isSpecificIp(ip)) throw bad(`${ip} is not an IP address`);
    for (const dns of opts.dnsNames ?? []) if (!/^[a-z0-9*]([a-z0-9.-]*[a-z0-9])?$/.test(dns)) throw bad(`${dns} is not a DNS name`);
  }
}

/**
 * A new CA for `trustDomain`: an RSA key (PKCS#8 PEM) and its self-signed certificate, valid for
 * CA_VALIDITY_YEARS. Written nowhere: the caller keeps it (data directory, Kubernetes Secret).
 */
export function newCaPem(trustDomain: string): { keyPem: string; certPem: string } {
  if (!isTrustDomain(trustDomain)) throw invalidArgument(`invalid trust domain ${JSON.stringify(trustDomain)}`);
  const { privateKey: keyPem, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: RSA_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  cert.serialNumber = randomSerialHex();
  const now = Date.now();
  cert.validity.notBefore = new Date(now - CLOCK_SKEW_SECONDS * 1000);
  cert.validity.notAfter = new Date(now);
  cert.validity.notAfter.setUTCFullYear(cert.validity.notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);
  const name = [{ name: 'commonName', value: `${CA_CN_PREFIX}${trustDomain}` }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

/** DER of DigestInfo's AlgorithmIdentifier for SHA-256 (RFC 8017 §9.2, note 1), before the 32-byte digest. */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * An RSASSA-PKCS1-v1_5 signer with forge's `key.sign(md)` shape, doing the private-key operation
 * in OpenSSL: forge hashes the TBSCertificate (cheap), OpenSSL pads DigestInfo and signs (~1 ms
 * instead of forge's ~20 ms of JavaScript big-number arithmetic on the event loop).
 */
function nativeRsaSigner(key: KeyObject): { sign(md: forge.md.MessageDigest): string } {
  return {
    sign(md: forge.md.MessageDigest): string {
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      const signature = privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]));
      return signature.toString('binary');
    },
  };
}

/** A positive 16-byte serial number, hex (the top bit cleared so DER keeps it positive). */
function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  if (bytes[0] === 0) bytes[0] = 0x01;
  return bytes.toString('hex');
}
