/**
 * `palisade cni install|uninstall`: the node side of palisade-cni, run by the DaemonSet's
 * `install-cni` init container against the host's CNI directories. Install copies the plugin
 * binary into the bin directory (temp file + rename: a runtime never runs half a binary), then
 * puts palisade-cni last in the network configuration the runtime uses (./conflist.ts; written the
 * same way, so a runtime reads the old file or the new one). Uninstall takes the entry out of every
 * configuration that has it, then removes the binary. Nothing is written when nothing changes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file';
import { describeCause, PalisadeError } from '../../common/errors';
import { chooseNetworkConfig, PLUGIN_TYPE, withoutPalisade, withPalisade, type PalisadeCniEntry } from './conflist';

export interface CniInstallOptions {
  binDir: string;
  confDir: string;
  /** The plugin binary to install (the image's dist/cni/palisade-cni). */
  plugin: string;
  entry: Omit<PalisadeCniEntry, 'type'>;
}

export interface CniInstallResult {
  /** The configuration file palisade-cni is in. */
  config: string;
  /** Whether the configuration file was rewritten (false: it already had this entry). */
  configChanged: boolean;
  /** The `.conf` it replaced, if any. */
  replaced?: string;
}

export function installCni(opts: CniInstallOptions): CniInstallResult {
  const names = listDir(opts.confDir);
  const chosen = chooseNetworkConfig(names);
  if (!chosen) {
    throw new PalisadeError(
      'PALISADE_ERR_NOT_FOUND',
      `no CNI network configuration in ${opts.confDir} yet (a .conf, .conflist or .json file): the cluster's network plugin writes it; try again once it has`,
    );
  }
  const file = path.join(opts.confDir, chosen);
  const edit = withPalisade({ name: chosen, text: readText(file) }, { type: PLUGIN_TYPE, ...opts.entry });
  copyBinary(opts.plugin, path.join(opts.binDir, PLUGIN_TYPE));
  if (edit.changed) writeFileAtomic(path.join(opts.confDir, edit.name), edit.text, 0o644);
  if (edit.replaces) fs.rmSync(path.join(opts.confDir, edit.replaces), { force: true });
  return { config: path.join(opts.confDir, edit.name), configChanged: edit.changed, ...(edit.replaces ? { replaced: edit.replaces } : {}) };
}

/** Takes palisade-cni out of every configuration in `confDir`, then its binary; returns the files changed. */
export function uninstallCni(opts: { binDir: string; confDir: string }): string[] {
  const changed: string[] = [];
  for (const name of listDir(opts.confDir).filter((n) => chooseNetworkConfig([n]) === n)) {
    const file = path.join(opts.confDir, name);
    const edit = withoutPalisade({ name, text: readText(file) });
    if (!edit.changed) continue;
    writeFileAtomic(file, edit.text, 0o644);
    changed.push(file);
  }
  fs.rmSync(path.join(opts.binDir, PLUGIN_TYPE), { force: true });
  return changed;
}

function copyBinary(from: string, to: string): void {
  const tmp = `${to}.${process.pid}.tmp`;
  try {
    fs.copyFileSync(from, tmp);
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, to);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot install ${from} as ${to}: ${describeCause(err)}`, { cause: err });
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `cannot read the CNI configuration directory ${dir}: ${describeCause(err)}`, { cause: err });
  }
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `cannot read ${file}: ${describeCause(err)}`, { cause: err });
  }
}
