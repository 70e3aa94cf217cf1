/**
 * The agent's one FlowSink: every finished flow goes to each sink in turn (access log, metrics,
 * the collector reporter). A sink that throws is logged (at most every 10 s) and does not keep
 * the flow from the others, nor reach the proxy that recorded it.
 */
import type { FlowRecord, FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';

const LOG_EVERY_MS = 10_000;

export class FlowFanOut implements FlowSink {
  private readonly sinks: FlowSink[];
  private readonly log: Logger;
  private lastErrorLog = 0;

  constructor(sinks: ReadonlyArray<FlowSink | undefined>, log: Logger) {
    this.sinks = sinks.filter((s): s is FlowSink => s !== undefined);
    this.log = log;
  }

  record(flow: FlowRecord): void {
    const sinks = this.sinks;
    for (let i = 0; i < sinks.length; i++) {
      try {
        sinks[i]!.record(flow);
      } catch (err) {
        this.failed(err);
      }
    }
  }

  private failed(err: unknown): void {
    const now = Date.now();
    if (now - this.lastErrorLog < LOG_EVERY_MS) return;
    this.lastErrorLog = now;
    this.log.error({ err }, 'a flow sink failed; the flow still went to the others');
  }
}
