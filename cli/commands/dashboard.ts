/**
 * `palisade dashboard`: a link that opens the collector's service map in a browser. The admin
 * token buys a single-use login ticket (valid a minute) that travels in the link's fragment —
 * never sent to a server, so never in a request line or a log — and the page exchanges it for
 * a session cookie. The admin token itself never leaves this process.
 */
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { DASHBOARD_API, TICKET_FRAGMENT, type TicketResponse } from '../../common/dashboard-api';
import { expectShape } from '../api-answers';
import { addApiOptions, apiClient } from '../api-options';
import { resolveApiConfig, type ApiFlags } from '../config';
import type { ApiDeps } from '../deps';

/** Ask the desktop to open `url` (xdg-open); false when there is none to ask. */
function openInBrowser(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
}

export function registerDashboardCommands(program: Command, deps: ApiDeps): void {
  addApiOptions(
    program
      .command('dashboard')
      .description('open the service map: a single-use login link to the collector (valid a minute)')
      .option('--no-open', 'print the link instead of opening a browser'),
  ).action(async (flags: ApiFlags & { open: boolean }) => {
    const env = deps.env ?? process.env;
    const config = resolveApiConfig(flags, env);
    const r = expectShape<TicketResponse>(await apiClient(flags, env).postJson(DASHBOARD_API.ticket, {}), DASHBOARD_API.ticket, {
      ticket: 'string',
      expiresInMs: 'number',
      path: 'string',
    });
    const url = `${new URL(r.path, config.url).href}#${TICKET_FRAGMENT}=${r.ticket}`;
    const opened = flags.open && (await openInBrowser(url));
    deps.stdout(`${url}\n`);
    const seconds = Math.round(r.expiresInMs / 1000);
    deps.stderr(
      `${opened ? 'opened in your browser' : 'open this link in a browser'}: it logs in once, within ${seconds} s (run palisade dashboard again for a new one).\n` +
        `The page is served with the collector's certificate, issued by the mesh CA (${config.caFile}): trust that CA in the browser, or accept its warning once.\n`,
    );
  });
}
