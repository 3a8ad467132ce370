/**
 * The compile-time check that the browser's view of the API
 * (src/ui/browser/api-types.ts) still fits what the server answers
 * (answers.ts, src/state/types.ts): each `Fits` below fails to compile when
 * a field the UI reads was renamed, retyped or dropped. Types only: nothing
 * here runs. It lives with the API, which serves the UI, so the UI imports
 * nothing of the API.
 */
import type { AppView, DeployedApp, ElectionView, NodeView, StatusAnswer, TenantView } from './answers.js';
import type { App, HistoryEntry, Instance } from '../state/types.js';
import type * as Browser from '../ui/browser/api-types.js';

/** Compiles only when `Server` is assignable to `View`. */
type Fits<Server extends View, View> = [Server, View];

/** The checks; exported so the compiler keeps them. */
export type ViewChecks = [
  Fits<StatusAnswer, Browser.StatusView>,
  Fits<ElectionView, Browser.ElectionView>,
  Fits<NodeView, Browser.NodeView>,
  Fits<App, Browser.AppSummaryView>,
  Fits<AppView, Browser.AppDetailView>,
  Fits<Instance, Browser.InstanceView>,
  Fits<TenantView, Browser.TenantView>,
  Fits<HistoryEntry, Browser.HistoryEntryView>,
  Fits<DeployedApp, Browser.DeployedAppView>,
];
