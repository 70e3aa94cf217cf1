/**
 * A flow sink's accounting, as the control API reports it (collector/sinks/). Its own module so the
 * dashboard's page can import the API types without Node's modules.
 */
/** accepted = delivered + lost + buffered, at every moment */
export interface SinkCounts {
  /** flows handed to the sink (every flow the collector stored since it started) */
  accepted: number;
  /** flows the receiver acknowledged */
  delivered: number;
  /** flows given up: buffer full, refused by the receiver, still buffered at shutdown */
  lost: number;
  /** flows waiting or in flight */
  buffered: number;
}
