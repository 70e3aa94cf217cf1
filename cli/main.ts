#!/usr/bin/env node
/** Entry point of the `palisade` binary. */
import { execWithAgentFlags } from '../agent/runtime/v8-flags';
import { createRootLogger, type Logger } from '../common/log';

// The agent runs with its V8 settings (agent/runtime/v8-flags.ts): before anything is opened, and
// before the commands are loaded — an import would load them (~800 modules) before the re-exec,
// and the re-executed process would load them again: every agent start paid for two loads.
if (process.argv[2] === 'agent' && process.argv[3] !== 'uninstall') execWithAgentFlags();
const { run } = require('./program') as typeof import('./program');

let root: Logger | undefined;

function logger(level?: string): Logger {
  root ??= createRootLogger({ level });
  if (level) root.level = level;
  return root;
}

function waitForStop(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

run(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  logger,
  waitForStop,
}).then(
  // stdout into a pipe is written asynchronously: exit once what was written has been flushed, or
  // `palisade observe -o json | jq` loses the end of a large page.
  (code) => void process.stdout.write('', () => process.exit(code)),
  (err: unknown) => {
    process.stderr.write(`palisade: internal error: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(70);
  },
);
