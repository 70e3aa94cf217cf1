/**
 * palisade-cni in a node's CNI network configuration (pure, table-tested; the files are
 * ./install.ts's). The container runtime uses the first file of its configuration directory by
 * name with a `.conf`, `.conflist` or `.json` extension (libcni's order); palisade-cni goes last in
 * that file's plugin chain, after the cluster's network plugin has given the pod its addresses. A
 * single-plugin `.conf` becomes a `.conflist` of that plugin and ours. Inserting is idempotent (an
 * entry already there is replaced by the current one, still last); removing leaves the rest as it was.
 */
import { PalisadeError } from '../../common/errors';

export const PLUGIN_TYPE = 'palisade-cni';

/** Our entry in the chain (native/cni/palisade-cni.c reads these members). */
export interface PalisadeCniEntry {
  type: typeof PLUGIN_TYPE;
  agentSocket: string;
  timeoutMs: number;
  excludeNamespaces: string[];
}

export interface ConfigFile {
  name: string;
  text: string;
}

export interface ConfigEdit {
  /** The file to write (a `.conf` becomes `<base>.conflist`). */
  name: string;
  text: string;
  changed: boolean;
  /** The `.conf` the new `.conflist` replaces: removed once the new file is in place. */
  replaces?: string;
}

const CONFIG_FILE = /\.(conf|conflist|json)$/;

/** The file the runtime uses, of the names in its configuration directory (undefined: none yet). */
export function chooseNetworkConfig(names: readonly string[]): string | undefined {
  return names.filter((n) => CONFIG_FILE.test(n) && !n.startsWith('.')).sort()[0];
}

type Json = Record<string, unknown>;

function parse(file: ConfigFile): Json {
  let value: unknown;
  try {
    value = JSON.parse(file.text);
  } catch (err) {
    throw configInvalid(`${file.name}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw configInvalid(`${file.name}: not a JSON object`);
  return value as Json;
}

function pluginsOf(file: ConfigFile, conf: Json): Json[] {
  const plugins = conf.plugins;
  if (!Array.isArray(plugins) || plugins.some((p) => typeof p !== 'object' || p === null || Array.isArray(p))) {
    throw configInvalid(`${file.name}: "plugins" must be a list of objects`);
  }
  return plugins as Json[];
}

function isList(file: ConfigFile, conf: Json): boolean {
  if ('plugins' in conf) return true;
  if (typeof conf.type === 'string') return false;
  throw configInvalid(`${file.name}: neither a plugin list ("plugins") nor a single plugin ("type")`);
}

const render = (conf: Json): string => `${JSON.stringify(conf, null, 2)}\n`;

/** The configuration with palisade-cni last in its chain. Throws one line (PALISADE_ERR_CONFIG_INVALID) for a file it cannot read. */
export function withPalisade(file: ConfigFile, entry: PalisadeCniEntry): ConfigEdit {
  const conf = parse(file);
  if (typeof conf.cniVersion !== 'string' || typeof conf.name !== 'string') throw configInvalid(`${file.name}: has no "cniVersion" or "name"`);
  if (isList(file, conf)) {
    const plugins = pluginsOf(file, conf).filter((p) => p.type !== PLUGIN_TYPE);
    const text = render({ ...conf, plugins: [...plugins, { ...entry }] });
    return { name: file.name, text, changed: text !== file.text };
  }
  const { cniVersion, name, ...plugin } = conf;
  const listName = file.name.replace(CONFIG_FILE, '.conflist');
  return { name: listName, text: render({ cniVersion, name, plugins: [plugin, { ...entry }] }), changed: true, replaces: file.name };
}

/** The palisade-cni entry of a configuration, if it has one (a file that does not parse has none). */
export function palisadeEntryOf(file: ConfigFile): PalisadeCniEntry | undefined {
  let conf: Json;
  try {
    conf = parse(file);
  } catch {
    return undefined;
  }
  const plugins = Array.isArray(conf.plugins) ? (conf.plugins as unknown[]) : [conf];
  const entry = plugins.find((p): p is Json => typeof p === 'object' && p !== null && (p as Json).type === PLUGIN_TYPE);
  return entry as PalisadeCniEntry | undefined;
}

/** The configuration without palisade-cni; `changed` false when it did not list it (or is not a list). */
export function withoutPalisade(file: ConfigFile): ConfigEdit {
  const conf = parse(file);
  if (!isList(file, conf)) return { name: file.name, text: file.text, changed: false };
  const plugins = pluginsOf(file, conf);
  const kept = plugins.filter((p) => p.type !== PLUGIN_TYPE);
  if (kept.length === plugins.length) return { name: file.name, text: file.text, changed: false };
  return { name: file.name, text: render({ ...conf, plugins: kept }), changed: true };
}

function configInvalid(message: string): PalisadeError {
  return new PalisadeError('PALISADE_ERR_CONFIG_INVALID', message);
}
