/**
 * The access log: one structured pino line per finished connection or HTTP request
 * (`{"event":"flow", …FlowRecord}`), the flow record until the collector stores flows.
 */
import type { FlowRecord, FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';

export class AccessLog implements FlowSink {
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log.child({ component: 'access' });
  }

  record(flow: FlowRecord): void {
    this.log.info({ event: 'flow', ...flow }, 'flow');
  }
}
