// @ts-check
// Sign in with Zooniverse the way the ML Subject Assistant does (panoptes-javascript-client's
// implicit grant): the browser goes to {panoptes}/oauth/authorize?response_type=token&…, and
// Panoptes sends it back to this app's root with the token in the URL fragment.
//
// The token lives in memory and in sessionStorage (this tab only, gone when it closes): never
// in localStorage, a cookie or a URL. It is sent only as `Authorization: Bearer` to this app.

import {meta} from "./dom.js";

/** @import {User} from "./types.js" */
/** @typedef {{token: string, expiresAt: number, user?: User}} Session expiresAt: ms since epoch */
/** @typedef {{outcome: "none" | "signed-in" | "refused" | "denied", message?: string, returnTo: string}} SignInResult */

const SESSION_KEY = "sa-export.session";
const PENDING_KEY = "sa-export.sign-in";
const PENDING_MAX_AGE_MS = 30 * 60 * 1000; // a sign-in left unfinished longer than this is void
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (about 24.8 days)
// Paths of this page that a sign-in may come back to.
const RETURN_PATH = /^\/(subject-assistant\/\d{1,19}\/?)?$/;

/** @type {Session | null} */
let session = null;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let expiryTimer;
/** @type {((message: string) => void)[]} */
const expiredListeners = [];

export function panoptesUrl() {
  return meta("panoptes-url").replace(/\/+$/, "");
}

export function clientId() {
  return meta("panoptes-client-id");
}

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the sign-in then lasts as long as the page
  }
}

/**
 * @param {string} key
 * @returns {any}
 */
function readJson(key) {
  try {
    const raw = storage()?.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/**
 * @param {string} key
 * @param {unknown} value
 */
function writeJson(key, value) {
  try {
    storage()?.setItem(key, JSON.stringify(value));
  } catch {
    /* quota or disabled storage: memory only */
  }
}

/** @param {string} key */
function remove(key) {
  try {
    storage()?.removeItem(key);
  } catch {
    /* nothing to do */
  }
}

function randomState() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * @param {unknown} path
 * @returns {string}
 */
export function safeReturnPath(path) {
  return typeof path === "string" && RETURN_PATH.test(path) ? path : "/";
}

/**
 * Leave for Zooniverse's sign-in page; come back to `returnTo` afterwards.
 * @param {string} [returnTo]
 */
export function beginSignIn(returnTo = window.location.pathname) {
  const state = randomState();
  writeJson(PENDING_KEY, {state, returnTo: safeReturnPath(returnTo), at: Date.now()});
  const params = new URLSearchParams({
    response_type: "token",
    client_id: clientId(),
    redirect_uri: `${window.location.origin}/`,
    state,
  });
  window.location.assign(`${panoptesUrl()}/oauth/authorize?${params}`);
}

/**
 * Handle the way back from Zooniverse, if this page load is one: read the fragment, remove it
 * from the address bar at once, check `state`, keep the token. Returns
 * {outcome: "none" | "signed-in" | "refused" | "denied", message?, returnTo}.
 * @returns {SignInResult}
 */
export function completeSignIn() {
  const hash = window.location.hash.replace(/^#/, "");
  const fragment = new URLSearchParams(hash);
  if (!fragment.has("access_token") && !fragment.has("error")) {
    return {outcome: "none", returnTo: window.location.pathname};
  }
  const pending = readJson(PENDING_KEY);
  remove(PENDING_KEY); // a reply is accepted once
  const returnTo = safeReturnPath(pending?.returnTo ?? window.location.pathname);
  // The token must not stay in the address bar, the history or a bookmark.
  window.history.replaceState(null, "", returnTo);

  const fresh = pending && typeof pending.at === "number" && Date.now() - pending.at < PENDING_MAX_AGE_MS;
  if (!pending || !fresh || typeof pending.state !== "string" || fragment.get("state") !== pending.state) {
    return {
      outcome: "refused",
      returnTo,
      message: "Sign-in refused: the answer from Zooniverse does not belong to a sign-in started on this " +
        "page (its state did not match), so it was ignored. Please sign in again.",
    };
  }
  if (fragment.has("error")) {
    const denied = fragment.get("error") === "access_denied";
    return {
      outcome: "denied",
      returnTo,
      message: denied
        ? "Sign-in cancelled: Zooniverse did not give this page access to your account."
        : `Zooniverse could not sign you in (${fragment.get("error")}). Please try again.`,
    };
  }
  const token = fragment.get("access_token");
  const type = (fragment.get("token_type") || "bearer").toLowerCase();
  if (!token || type !== "bearer") {
    return {outcome: "refused", returnTo, message: "Sign-in refused: Zooniverse's answer had no usable access token."};
  }
  const expiresIn = Number.parseInt(fragment.get("expires_in") || "7200", 10);
  const seconds = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 7200;
  setSession({token, expiresAt: Date.now() + seconds * 1000});
  return {outcome: "signed-in", returnTo};
}

/** @param {Session} value */
function setSession(value) {
  session = value;
  writeJson(SESSION_KEY, {token: value.token, expiresAt: value.expiresAt});
  armTimer();
}

/**
 * The session kept in this tab, if any and not expired.
 * @returns {boolean}
 */
export function restoreSession() {
  const saved = readJson(SESSION_KEY);
  if (saved && typeof saved.token === "string" && typeof saved.expiresAt === "number" && saved.expiresAt > Date.now()) {
    session = {token: saved.token, expiresAt: saved.expiresAt};
    armTimer();
  } else {
    remove(SESSION_KEY);
  }
  return signedIn();
}

function armTimer() {
  clearTimeout(expiryTimer);
  if (!session) return;
  const wait = Math.min(Math.max(session.expiresAt - Date.now(), 0), MAX_TIMER_MS);
  expiryTimer = setTimeout(checkExpiry, wait);
}

function checkExpiry() {
  if (!session) return;
  if (Date.now() >= session.expiresAt) {
    expire("Your Zooniverse sign-in has expired. Sign in again to carry on: you will come back to this page.");
  } else {
    armTimer(); // timers in background tabs can fire early or late
  }
}

/** @returns {boolean} */
export function signedIn() {
  return session !== null && Date.now() < session.expiresAt;
}

/**
 * The bearer token, or null when signed out or expired (which also tells the listeners).
 * @returns {string | null}
 */
export function token() {
  if (!session) return null;
  if (Date.now() >= session.expiresAt) {
    checkExpiry();
    return null;
  }
  return session.token;
}

/** @param {User} user */
export function rememberUser(user) {
  if (session) session.user = user;
}

/** @returns {User | null} */
export function user() {
  return session?.user ?? null;
}

function forget() {
  clearTimeout(expiryTimer);
  session = null;
  remove(SESSION_KEY);
}

export function signOut() {
  forget();
}

/**
 * The token is no longer good (expired, or the API answered 401): forget it, tell the page.
 * @param {string} message
 */
export function expire(message) {
  if (!session) return;
  forget();
  for (const listener of expiredListeners) listener(message);
}

/** @param {(message: string) => void} listener */
export function onExpired(listener) {
  expiredListeners.push(listener);
}

// A tab that slept (laptop lid, background throttling) checks at once when it wakes.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") checkExpiry();
});
