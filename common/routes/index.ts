/** Traffic routes (Gateway API HTTPRoute on Services): parse once, look up per Service, match per request. */
export { catchAll, firstMatch, pathMatches, rankMatches, type RuleChoice } from './match';
export { DEFAULT_BACKOFF_MS, DEFAULT_RETRY_ATTEMPTS, MAX_BACKOFF_MS, DEFAULT_RETRY_CODES, parseHttpRouteSpec, type HttpRouteSpecResult, type RouteProblem } from './parse-http-route';
export { parseFaultSpec } from './parse-fault';
export { parseGrpcRouteSpec, type GrpcRouteSpecResult } from './parse-grpc-route';
export { regexProblem } from './regex-check';
export { MAX_FAULT_DELAY_MS, MAX_ROUTE_TIMEOUT_MS } from './route-duration';
export { RouteTable, type ServiceRoutes } from './route-table';
export * from './types';
export * from './destination-rule';
export { DestinationTable, type DestinationPolicy } from './destination-table';
export { parseDestinationRuleSpec, SUBSETS_HINT } from './parse-destination-rule';
