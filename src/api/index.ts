// The HTTP/JSON API (docs/api.md) and the node's metrics.
export { ApiServer, BODY_BYTES_MAX, INDEX_HEADER, formatHostPort } from './server.js';
export type { ApiServerOptions } from './server.js';
export type { ApiBackend, LeaveOutcome } from './backend.js';
export { Metrics } from './metrics.js';
export type { RaftGaugeSource, ProposalOutcome } from './metrics.js';
export { ApiError, ApiCode } from './errors.js';
