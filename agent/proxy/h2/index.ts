/** The proxy's HTTP/2 front (h2c) and its upstream sessions: routed gRPC and HTTP/2 requests. */
export { H2Front, type H2FrontOptions } from './front';
export type { H2Session } from './exchange';
export { asksForH2c, SWITCHING_TO_H2C, type UpgradeRequest } from './h2c-upgrade';
export { H2_PREFACE, prefaceKind, prefaceMatch, readPreface, type HeadClassifier, type HeadKind, type PrefaceRead } from './preface';
