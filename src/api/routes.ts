/** Every route of the API, in the order docs/api.md lists them. */
import { clusterRoutes } from './routes-cluster.js';
import { stateRoutes } from './routes-state.js';
import type { Route } from './router.js';

/** The route table the server matches against. */
export const routes: Route[] = [...clusterRoutes, ...stateRoutes];
