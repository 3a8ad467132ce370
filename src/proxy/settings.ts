/**
 * An app's proxy settings: `x-hivemind.proxy` of its current version with
 * the proxy's defaults for what it leaves out. Pure.
 */
import type { AppSpec, ProxyBalance } from '../state/types.js';
import type { AbRule } from './ab-rule.js';

/** Every setting the proxy uses for one app, resolved. Durations in milliseconds. */
export interface ProxySettings {
  readonly balance: ProxyBalance;
  /** balance "hash": where the key comes from; absent for other balances. */
  readonly hashOn?: { readonly header: string } | { readonly cookie: string };
  /** The A/B rule (`ab-rule.ts`); absent when the app declares none. */
  readonly ab?: AbRule;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retries: number;
  readonly retryBudgetPercent: number;
  readonly breakerFailures: number;
  readonly breakerOpenMs: number;
  readonly outlierFailures: number;
  readonly outlierEjectionMs: number;
  readonly maxConcurrent: number;
}

/** The defaults: Envoy's and Linkerd's usual choices, scaled for one node. */
export const PROXY_DEFAULTS: ProxySettings = {
  balance: 'round-robin',
  timeoutMs: 30_000,
  connectTimeoutMs: 2_000,
  retries: 2,
  retryBudgetPercent: 20,
  breakerFailures: 5,
  breakerOpenMs: 5_000,
  outlierFailures: 5,
  outlierEjectionMs: 10_000,
  maxConcurrent: 1_000,
};

/** The settings of an app whose current spec is `spec` (undefined: the defaults). */
export function settingsOf(spec: AppSpec | undefined): ProxySettings {
  const given = spec?.hivemind.proxy;
  if (given === undefined) return PROXY_DEFAULTS;
  const hashOn = given.hashHeader !== undefined ? { header: given.hashHeader } : given.hashCookie !== undefined ? { cookie: given.hashCookie } : undefined;
  const abOn = given.abHeader !== undefined ? { header: given.abHeader } : given.abCookie !== undefined ? { cookie: given.abCookie } : undefined;
  return {
    balance: given.balance ?? (hashOn !== undefined ? 'hash' : PROXY_DEFAULTS.balance),
    ...(hashOn === undefined ? {} : { hashOn }),
    ...(abOn === undefined ? {} : { ab: given.abValue === undefined ? { on: abOn } : { on: abOn, value: given.abValue } }),
    timeoutMs: given.timeoutMs ?? PROXY_DEFAULTS.timeoutMs,
    connectTimeoutMs: given.connectTimeoutMs ?? PROXY_DEFAULTS.connectTimeoutMs,
    retries: given.retries ?? PROXY_DEFAULTS.retries,
    retryBudgetPercent: given.retryBudgetPercent ?? PROXY_DEFAULTS.retryBudgetPercent,
    breakerFailures: given.breakerFailures ?? PROXY_DEFAULTS.breakerFailures,
    breakerOpenMs: given.breakerOpenMs ?? PROXY_DEFAULTS.breakerOpenMs,
    outlierFailures: given.outlierFailures ?? PROXY_DEFAULTS.outlierFailures,
    outlierEjectionMs: given.outlierEjectionMs ?? PROXY_DEFAULTS.outlierEjectionMs,
    maxConcurrent: given.maxConcurrent ?? PROXY_DEFAULTS.maxConcurrent,
  };
}
