/**
 * `make test-lanes` runs the suite in two mocha processes at once (test/harness/run-lanes.ts): the
 * "waiting" lane holds the few files that spend most of their time idle on a fixed wait a test
 * is about (an outage that lasts 60 s, a receiver down for 30 s, certificates renewed over two
 * minutes), the main lane everything else. Their waits then overlap the rest of the suite instead
 * of adding to it; what each test asserts is unchanged.
 *
 * What may go in the waiting lane (measured on 2 cores: privileged suites starting together flake
 * under load): files whose CPU use is low while they wait, and never a demo suite (the demo's
 * names are fixed: two demos at once collide). The table test in test/unit/harness/lanes.test.ts
 * holds that.
 */
import * as path from 'node:path';

/** Paths under test/ without the extension; longest first, so the lane ends early. */
export const WAITING_LANE: readonly string[] = [
  'privileged/agent/mesh', // two minutes of requests across 30-second certificate renewals
  'privileged/agent/flows-outage', // the collector down for 60 s
  'integration/collector/flow-sinks', // the OTLP receiver down for 30 s
];

/** A demo suite (test/privileged/cli/demo*): never in the waiting lane. */
export function isDemoSuite(file: string): boolean {
  return /(^|\/)privileged\/cli\/demo[^/]*$/.test(file);
}

/** The compiled files of the waiting lane, under the compiled test/ directory. */
export function waitingLaneFiles(testDir: string): string[] {
  return WAITING_LANE.map((f) => path.join(testDir, `${f}.test.js`));
}

/** mocha's command-line options from its config (.mocharc.json) without the spec. */
export function mochaOptions(config: Record<string, unknown>): string[] {
  const args: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (key === 'spec') continue;
    if (value === true) args.push(`--${key}`);
    else if (value === false) args.push(`--no-${key}`);
    else if (typeof value === 'string' || typeof value === 'number') args.push(`--${key}`, String(value));
    else throw new Error(`.mocharc.json: option ${key} has a value the lane runner does not pass on: ${JSON.stringify(value)}`);
  }
  return args;
}
