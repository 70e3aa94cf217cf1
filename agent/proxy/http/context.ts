/** What one downstream connection works with: the front's settings and logger, its session's callbacks. */
import type { Logger } from '../../../common/log';
import type { HeaderRules } from './headers';
import type { HttpLimits } from './limits';
import type { HopTracer, HttpRecord, HttpSession } from './types';
import type { ConnectionPool } from './upstream';

export interface FrontContext {
  readonly limits: HttpLimits;
  readonly rules: HeaderRules;
  readonly authorize: HttpSession['authorize'];
  readonly connect: HttpSession['connect'];
  readonly log: Logger;
  /**
   * the shared pool whose idle upstream connections this session shares with others of the same
   * name (none: each connection keeps its own); looked up per request (sharedPool), never held: a
   * pool held past its drop from the front's map would be one nobody else takes from or sweeps
   */
  readonly poolName?: string | undefined;
  /** the front's shared pool of that name (a routed request's upstream, chosen per attempt) */
  sharedPool?(name: string): ConnectionPool;
  /** switches `Upgrade: h2c` requests to HTTP/2 when set */
  readonly upgradeH2c?: HttpSession['upgradeH2c'];
  /** traces requests when set */
  readonly tracer?: HopTracer | undefined;
  /** onRecord, shielded: a throwing callback is logged, never breaks a connection */
  record(r: HttpRecord): void;
}
