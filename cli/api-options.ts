/** The options every command that talks to the collector's API takes, and the client they make. */
import type { Command } from 'commander';
import { ApiClient } from '../common/api-client';
import { resolveApiConfig, type ApiFlags } from './config';
import { collectValue } from './options';

/** `several`: --collector is repeatable (collector replicas; the command reads `collector` as a list). */
export function addApiOptions(cmd: Command, opts: { several?: boolean } = {}): Command {
  const collector = 'collector API, https://HOST:PORT (or env PALISADE_COLLECTOR, or the config file)';
  return (opts.several ? cmd.option('--collector <url>', `${collector}; repeatable: every collector replica is asked`, collectValue) : cmd.option('--collector <url>', collector))
    .option('--token <token>', 'admin token (other users can see it in ps: prefer --token-file, env PALISADE_TOKEN or the config file)')
    .option('--token-file <file>', "file holding the admin token (the collector's <data>/admin.token)")
    .option('--ca <file>', "mesh CA certificate (the collector's <data>/ca.crt; or env PALISADE_CA, or the config file)");
}

export function apiClient(flags: ApiFlags, env: Readonly<Record<string, string | undefined>> = process.env): ApiClient {
  const config = resolveApiConfig(flags, env);
  return new ApiClient({ url: config.url, token: config.token, caPem: config.caPem, caFile: config.caFile });
}
