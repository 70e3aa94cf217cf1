/**
 * Where the CLI finds the collector's API: its URL, the admin token and the mesh CA file.
 *
 * Each setting is taken from the first of: a flag (`--collector`, `--token` / `--token-file`,
 * `--ca`), the environment (`PALISADE_COLLECTOR`, `PALISADE_TOKEN`, `PALISADE_CA`), the config file
 * `$XDG_CONFIG_HOME/palisade/config.yaml` (default `~/.config/palisade/config.yaml`; keys
 * `collector`, `token` or `tokenFile`, `ca`; relative paths are relative to the file). The URL
 * defaults to the collector's default listen address.
 *
 * `palisade demo up` writes that file for its own collector and `demo down` removes it again,
 * but never a file the demo did not write.
 */
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { writeFileAtomic } from '../common/atomic-file';
import { describeCause, errorCode, invalidArgument, PalisadeError } from '../common/errors';

export const DEFAULT_COLLECTOR_URL = 'https://127.0.0.1:15012';
const FILE_KEYS = ['collector', 'token', 'tokenFile', 'ca'] as const;
const MAX_CONFIG_BYTES = 64 * 1024;
const MAX_TOKEN_BYTES = 4096;

/** The flags of a command that talks to the collector API. */
export interface ApiFlags {
  collector?: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
}

/** What the CLI needs to call the API, every file already read. */
export interface ApiConfig {
  /** `https://host:port`, no path. */
  url: string;
  token: string;
  caPem: string;
  /** The CA file, for error messages. */
  caFile: string;
}

/** The config file's content, paths resolved against its directory. */
export interface FileConfig {
  collector?: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

const configError = (message: string, cause?: unknown): PalisadeError =>
  new PalisadeError('PALISADE_ERR_CONFIG_INVALID', message, cause === undefined ? undefined : { cause });
/** `ENOENT`, or what the error says when it has no code. */
const errnoOf = (err: unknown): string => errorCode(err) ?? describeCause(err);

/** `$XDG_CONFIG_HOME/palisade/config.yaml`, or `~/.config/palisade/config.yaml`. */
export function configFilePath(env: Env = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  // The XDG spec: a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'palisade', 'config.yaml');
}

/**
 * `https://HOST:PORT` (or bare `HOST:PORT`) as a normalized URL; anything else (another scheme, a
 * path, credentials, a query) is refused, naming `what` (`--collector`, `PALISADE_COLLECTOR`, …).
 */
export function parseCollectorApiUrl(text: string, what: string): string {
  const shown = JSON.stringify(text.length > 256 ? `${text.slice(0, 256)}…` : text);
  const hint = `expected https://HOST:PORT like ${DEFAULT_COLLECTOR_URL}`;
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw invalidArgument(`invalid ${what} ${shown}: ${hint}`);
  }
  if (u.protocol !== 'https:') throw invalidArgument(`invalid ${what} ${shown}: the collector API is HTTPS only (${hint})`);
  if (u.username || u.password || u.search || u.hash || (u.pathname !== '/' && u.pathname !== '') || !u.hostname) {
    throw invalidArgument(`invalid ${what} ${shown}: ${hint}`);
  }
  return `https://${u.host}`;
}

/** The config file, or undefined when there is none; a malformed file is one line naming it. */
export function readConfigFile(file: string): FileConfig | undefined {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw configError(`cannot read config file ${file}: not a regular file`);
    if (st.size > MAX_CONFIG_BYTES) throw configError(`invalid config file ${file}: larger than ${MAX_CONFIG_BYTES} bytes`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof PalisadeError) throw err;
    if (errorCode(err) === 'ENOENT') return undefined;
    throw configError(`cannot read config file ${file}: ${errnoOf(err)}`, err);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line;
    const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?\s*$/, '');
    throw configError(`invalid config file ${file}${line ? `:${line}` : ''}: ${what}`);
  }
  if (doc.contents === null) return {}; // empty file, or only comments
  if (!isMap(doc.contents)) throw configError(`invalid config file ${file}: expected a mapping of ${FILE_KEYS.join(', ')}`);
  const raw = doc.toJS() as Record<string, unknown>;
  const out: FileConfig = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!(FILE_KEYS as readonly string[]).includes(key)) {
      throw configError(`invalid config file ${file}: unknown key ${JSON.stringify(key.slice(0, 64))} (known: ${FILE_KEYS.join(', ')})`);
    }
    if (typeof value !== 'string' || value === '') throw configError(`invalid config file ${file}: ${key} must be a non-empty string`);
    out[key as (typeof FILE_KEYS)[number]] = value;
  }
  if (out.token !== undefined && out.tokenFile !== undefined) {
    throw configError(`invalid config file ${file}: give token or tokenFile, not both`);
  }
  const dir = path.dirname(file);
  if (out.tokenFile !== undefined) out.tokenFile = path.resolve(dir, out.tokenFile);
  if (out.ca !== undefined) out.ca = path.resolve(dir, out.ca);
  return out;
}

function readTokenFile(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(`cannot read token file ${file} (${what}): ${errnoOf(err)}`, err);
  }
  const token = text.trim();
  if (!token) throw configError(`token file ${file} (${what}) is empty`);
  return checkToken(token, what);
}

function checkToken(token: string, what: string): string {
  // It goes into an HTTP header: no line breaks or control characters, bounded.
  if (token.length > MAX_TOKEN_BYTES || /[^\x21-\x7e]/.test(token)) throw invalidArgument(`invalid token from ${what}: not a token`);
  return token;
}

function readCa(file: string, what: string): string {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(`cannot read CA file ${file} (${what}): ${errnoOf(err)}`, err);
  }
  try {
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM');
    new X509Certificate(pem); // eslint-disable-line no-new
  } catch {
    throw configError(`CA file ${file} (${what}) holds no valid PEM certificate`);
  }
  return pem;
}

/**
 * Resolve the API settings, each from flags, else env, else the config file. Missing token or
 * CA is one line saying how to give it.
 */
export function resolveApiConfig(flags: ApiFlags, env: Env = process.env): ApiConfig {
  if (flags.token !== undefined && flags.tokenFile !== undefined) throw invalidArgument('give --token or --token-file, not both');
  const file = configFilePath(env);
  // The file is read only when a setting is left to it, so a broken file never hides flags.
  let loaded: FileConfig | undefined | null = null;
  const fromFile = (): FileConfig => {
    if (loaded === null) loaded = readConfigFile(file);
    return loaded ?? {};
  };
  const envOf = (name: string): string | undefined => (env[name] ? env[name] : undefined);

  let url: string;
  if (flags.collector !== undefined) url = parseCollectorApiUrl(flags.collector, '--collector');
  else if (envOf('PALISADE_COLLECTOR')) url = parseCollectorApiUrl(envOf('PALISADE_COLLECTOR')!, 'PALISADE_COLLECTOR');
  else if (fromFile().collector) url = parseCollectorApiUrl(fromFile().collector!, `collector in ${file}`);
  else url = DEFAULT_COLLECTOR_URL;

  let token: string;
  if (flags.token !== undefined) token = checkToken(flags.token, '--token');
  else if (flags.tokenFile !== undefined) token = readTokenFile(flags.tokenFile, '--token-file');
  else if (envOf('PALISADE_TOKEN')) token = checkToken(envOf('PALISADE_TOKEN')!.trim(), 'PALISADE_TOKEN');
  else if (fromFile().token) token = checkToken(fromFile().token!, `token in ${file}`);
  else if (fromFile().tokenFile) token = readTokenFile(fromFile().tokenFile!, `tokenFile in ${file}`);
  else {
    throw invalidArgument(
      `no collector token: pass --token-file FILE (the collector's <data>/admin.token), set PALISADE_TOKEN, or set tokenFile in ${file}`,
    );
  }

  let caFile: string;
  let what: string;
  if (flags.ca !== undefined) [caFile, what] = [flags.ca, '--ca'];
  else if (envOf('PALISADE_CA')) [caFile, what] = [envOf('PALISADE_CA')!, 'PALISADE_CA'];
  else if (fromFile().ca) [caFile, what] = [fromFile().ca!, `ca in ${file}`];
  else throw invalidArgument(`no mesh CA: pass --ca FILE (the collector's <data>/ca.crt), set PALISADE_CA, or set ca in ${file}`);
  return { url, token, caPem: readCa(caFile, what), caFile };
}

// --- the demo's config ---------------------------------------------------------------------

const DEMO_MARKER = '# Written by `palisade demo up`; `palisade demo down` removes it. Edit it and it is yours.';

/** The exact file the demo writes for the collector whose data directory is `collectorDir`. */
export function demoConfigText(collectorDir: string, listen: string): string {
  const q = (s: string): string => JSON.stringify(s);
  return [
    DEMO_MARKER,
    `collector: ${q(`https://${listen}`)}`,
    `tokenFile: ${q(path.resolve(collectorDir, 'admin.token'))}`,
    `ca: ${q(path.resolve(collectorDir, 'ca.crt'))}`,
    '',
  ].join('\n');
}

function readIfPresent(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Point the CLI's config file at the demo's collector (mode 0600), so `palisade observe` works
 * with no flags. A file the demo did not write is left alone, and an unwritable one skipped:
 * returns whether it wrote, prints nothing, never throws.
 */
export function writeDemoConfig(opts: { collectorDir: string; listen: string; env?: Env }): boolean {
  const file = configFilePath(opts.env);
  const existing = readIfPresent(file);
  if (existing !== undefined && !existing.startsWith(DEMO_MARKER)) return false;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileAtomic(file, demoConfigText(opts.collectorDir, opts.listen), 0o600);
    return true;
  } catch {
    // A convenience only: the demo runs without it, and `observe` then says what it misses.
    return false;
  }
}

/**
 * Remove the config file if it is still exactly what `writeDemoConfig` wrote for this collector;
 * returns whether it did. A user's own (or edited) file stays.
 */
export function removeDemoConfig(opts: { collectorDir: string; listen: string; env?: Env }): boolean {
  const file = configFilePath(opts.env);
  if (readIfPresent(file) !== demoConfigText(opts.collectorDir, opts.listen)) return false;
  try {
    fs.unlinkSync(file);
    return true;
  } catch {
    return false;
  }
}
