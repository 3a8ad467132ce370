/**
 * The token of this tab's session, in sessionStorage: it lives as long as
 * the tab, is not shared with other tabs, and is never sent anywhere but in
 * the API's Authorization header (not in a cookie, so no other site's page
 * can make the browser send it).
 */

const TOKEN_KEY = 'hivemind.token';

/** The session's token, if signed in. */
export function sessionToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

/** Keeps `token` for this tab. */
export function keepToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** Forgets the token (sign out, or the node refused it). */
export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}
