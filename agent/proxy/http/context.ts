/** What every downstream connection of one HttpFront shares: settings, callbacks, logger. */
import type { Logger } from '../../../common/log';
import type { HeaderRules } from './headers';
import type { HttpLimits } from './limits';
import type { HttpFrontOptions, HttpRecord } from './types';

export interface FrontContext {
  readonly limits: HttpLimits;
  readonly rules: HeaderRules;
  readonly authorize: HttpFrontOptions['authorize'];
  readonly connect: HttpFrontOptions['connect'];
  readonly log: Logger;
  /** onRecord, shielded: a throwing callback is logged, never breaks a connection */
  record(r: HttpRecord): void;
}
