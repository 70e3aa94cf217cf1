/**
 * Debian's Chromium, headless, driven by playwright-core (no browser download): a fresh profile
 * per launch, every console error, page error and request URL recorded, screenshots kept under
 * .artifacts/ (gitignored) for people to look at.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { tempDir } from './agent';

export const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/** Where screenshots go: <repo>/.artifacts/<suite>/ */
export const ARTIFACTS = path.resolve(__dirname, '..', '..', '..', '.artifacts');

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** console errors and uncaught page errors, in order */
  errors: string[];
  /** every URL the page requested */
  requests: string[];
  /** `<status> <url>` of every answer of 400 or more */
  failures: string[];
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

/** A headless Chromium with one page. `suite` names the screenshot folder. */
export async function launchBrowser(suite: string): Promise<Browser> {
  const profile = tempDir('chromium');
  const shots = path.join(ARTIFACTS, suite);
  fs.mkdirSync(shots, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    // the collector's certificate is the mesh CA's, which this fresh profile does not trust
    ignoreHTTPSErrors: true,
    viewport: { width: 1600, height: 1000 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  const requests: string[] = [];
  const failures: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  page.on('request', (r) => requests.push(r.url()));
  page.on('response', (r) => {
    if (r.status() >= 400) failures.push(`${r.status()} ${r.url()}`);
  });
  return {
    context,
    page,
    errors,
    requests,
    failures,
    async screenshot(name: string): Promise<string> {
      const file = path.join(shots, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    async close(): Promise<void> {
      await context.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
