/**
 * The A/B rule (`x-hivemind.proxy.ab`): during a rollout, requests that carry
 * a header or cookie (with a given value, or any) go to the version whose
 * spec declares the rule, the rollout's new version; the others follow the
 * split as usual (blue-green: the old version until promoted; canary: its
 * weights). So blue-green with an A/B rule is an A/B test that `promote` or
 * `abort` ends. Pure.
 */
import { cookieValue } from './cookies.js';

/** Where the rule reads its key, and the value that matches (absent: any value that is not empty). */
export interface AbRule {
  readonly on: { readonly header: string } | { readonly cookie: string };
  readonly value?: string;
}

/** Whether a request with these headers (lower-case names, as Node gives them) matches the rule. */
export function matchesAbRule(headers: Readonly<Record<string, string | string[] | undefined>>, rule: AbRule): boolean {
  let found: string | undefined;
  if ('header' in rule.on) {
    const value = headers[rule.on.header];
    found = Array.isArray(value) ? value[0] : value;
  } else {
    const cookie = headers.cookie;
    found = cookieValue(Array.isArray(cookie) ? cookie.join('; ') : cookie, rule.on.cookie);
  }
  if (found === undefined || found === '') return false;
  return rule.value === undefined || found.trim() === rule.value;
}

/**
 * The version that matching requests go to: `version` (the app's current
 * one, whose spec has the rule) while backends of another version also
 * serve; undefined otherwise (no rule, or one version only: nothing to choose).
 */
export function abVersionOf(rule: AbRule | undefined, version: number, servingVersions: ReadonlySet<number>): number | undefined {
  if (rule === undefined || !servingVersions.has(version) || servingVersions.size < 2) return undefined;
  return version;
}
