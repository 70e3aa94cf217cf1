/**
 * A mocha reporter for finding where the suite's time goes: the spec reporter's output, then the
 * test files ranked by wall time (their hooks included) and the slowest hooks. The spec output
 * alone shows each test's own duration, not its file's before/after hooks (topologies, agents,
 * collectors, demos), which on a quiet full run were 3–4 of its 20 minutes.
 *
 *   `make test` uses it (.mocharc.json); elsewhere: npx mocha --reporter dist/test/harness/timing-reporter.js
 *   [--reporter-option top=40] [files]
 */
import Mocha from 'mocha';

export interface Timed {
  title: string;
  ms: number;
}

/** The `top` slowest of `items` (same titles summed), one line each: seconds, then the title. */
export function ranking(items: readonly Timed[], top: number): string[] {
  const sums = new Map<string, number>();
  for (const { title, ms } of items) sums.set(title, (sums.get(title) ?? 0) + ms);
  return [...sums]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, top)
    .map(([title, ms]) => `${(ms / 1000).toFixed(1).padStart(8)} s  ${title}`);
}

/** The closing summary: files by wall time, hooks by duration, and how much of the run tests took. */
export function summary(files: readonly Timed[], hooks: readonly Timed[], testsMs: number, top: number): string[] {
  const wall = files.reduce((s, f) => s + f.ms, 0);
  const hooksMs = hooks.reduce((s, h) => s + h.ms, 0);
  return [
    '',
    `  Time: test files ${(wall / 1000).toFixed(1)} s, of which tests ${(testsMs / 1000).toFixed(1)} s and hooks ${(hooksMs / 1000).toFixed(1)} s`,
    `  Slowest test files (wall time, hooks included):`,
    ...ranking(files, top),
    `  Slowest hooks:`,
    ...ranking(hooks, top),
    '',
  ];
}

const { EVENT_HOOK_BEGIN, EVENT_HOOK_END, EVENT_SUITE_BEGIN, EVENT_SUITE_END, EVENT_TEST_END, EVENT_RUN_END } = Mocha.Runner.constants;

/** A file's top-level suite: what a test file's `describe` makes. */
const isFileSuite = (s: Mocha.Suite): boolean => s.file !== undefined && s.parent?.root === true;

const relative = (file: string | undefined): string => (file ? file.replace(`${process.cwd()}/`, '') : '?');

export default class TimingReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options: Mocha.MochaOptions & { reporterOptions?: { top?: string | number } }) {
    super(runner, options);
    const top = Number(options.reporterOptions?.top ?? 25);
    const started = new Map<object, number>();
    const files: Timed[] = [];
    const hooks: Timed[] = [];
    let testsMs = 0;
    runner.on(EVENT_SUITE_BEGIN, (s: Mocha.Suite) => {
      if (isFileSuite(s)) started.set(s, Date.now());
    });
    runner.on(EVENT_SUITE_END, (s: Mocha.Suite) => {
      if (isFileSuite(s)) files.push({ title: relative(s.file), ms: Date.now() - started.get(s)! });
    });
    runner.on(EVENT_HOOK_BEGIN, (h: Mocha.Hook) => started.set(h, Date.now()));
    runner.on(EVENT_HOOK_END, (h: Mocha.Hook) => {
      hooks.push({ title: `${relative(h.file ?? h.parent?.file)}: ${h.title.replace(/ for ".*"$/, '')} (${h.parent?.fullTitle() ?? ''})`, ms: Date.now() - started.get(h)! });
    });
    runner.on(EVENT_TEST_END, (t: Mocha.Test) => (testsMs += t.duration ?? 0));
    runner.once(EVENT_RUN_END, () => {
      for (const line of summary(files, hooks, testsMs, top)) process.stdout.write(`${line}\n`);
    });
  }
}
