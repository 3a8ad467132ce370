/** Every route of the API, in the order docs/api.md lists them. */
import { clusterRoutes } from './routes-cluster.js';
import { imageRoutes } from './routes-images.js';
import { logRoutes } from './routes-logs.js';
import { execRoutes } from './routes-exec.js';
import { networkRoutes } from './routes-network.js';
import { stateRoutes } from './routes-state.js';
import { rolloutRoutes } from './routes-rollouts.js';
import { tokenRoutes } from './routes-tokens.js';
import { volumeDataRoutes } from './routes-volumes.js';
import type { Route } from './router.js';

/** The route table the server matches against. */
export const routes: Route[] = [...clusterRoutes, ...logRoutes, ...execRoutes, ...stateRoutes, ...networkRoutes, ...rolloutRoutes, ...imageRoutes, ...tokenRoutes, ...volumeDataRoutes];
