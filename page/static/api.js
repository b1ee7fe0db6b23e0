// @ts-check
// The export service's API (same origin): every call carries the user's token as
// `Authorization: Bearer`, and every failure becomes an ApiError with a sentence a person can
// act on (the API's own `error.message` when it sent one).
import * as auth from "./auth.js";

/** @import {Export, ProjectExports, Projects} from "./types.js" */

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0: no answer at all)
   * @param {string} code the API's error code, or "http_<status>" / "network"
   * @param {string} message a sentence a person can act on
   */
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }

  /** Worth trying again by itself a little later. */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

const SIGN_IN_AGAIN = "Your Zooniverse sign-in is no longer valid. Sign in again to carry on.";

/**
 * @template T
 * @param {"GET" | "POST"} method
 * @param {string} path
 * @returns {Promise<{status: number, body: T}>}
 */
export async function request(method, path) {
  const token = auth.token();
  if (!token) throw new ApiError(401, "unauthenticated", SIGN_IN_AGAIN);
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: {Authorization: `Bearer ${token}`, Accept: "application/json"},
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError(0, "network", "The export service could not be reached. Check your connection; the page tries again by itself.");
  }
  /** @type {any} */
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.ok && body !== null && typeof body === "object") return {status: response.status, body};
  const error = body && typeof body === "object" && body.error && typeof body.error === "object" ? body.error : {};
  const code = typeof error.code === "string" ? error.code : "http_" + response.status;
  const message = typeof error.message === "string" && error.message
    ? error.message
    : response.ok
      ? "The export service sent an answer this page cannot read. Please reload the page."
      : `The export service answered with an error (HTTP ${response.status}). Please try again in a minute.`;
  if (response.status === 401) {
    // The token expired or was revoked: ask for a new sign-in, keep the page where it is.
    auth.expire(message || SIGN_IN_AGAIN);
  }
  throw new ApiError(response.status, code, message);
}

/** @returns {Promise<{status: number, body: Projects}>} */
export const listProjects = () => request("GET", "/api/projects");

/**
 * @param {string} projectId
 * @returns {Promise<{status: number, body: ProjectExports}>}
 */
export const listExports = (projectId) => request("GET", `/api/projects/${encodeURIComponent(projectId)}/exports`);

/**
 * @param {string} exportId
 * @returns {Promise<{status: number, body: Export}>}
 */
export const getExport = (exportId) => request("GET", `/api/exports/${encodeURIComponent(exportId)}`);

/**
 * @param {string} projectId
 * @param {string} setId
 * @returns {Promise<{status: number, body: Export}>}
 */
export const startExport = (projectId, setId) =>
  request("POST", `/api/projects/${encodeURIComponent(projectId)}/subject-sets/${encodeURIComponent(setId)}/exports`);

/**
 * @param {string} exportId
 * @returns {Promise<{status: number, body: Export}>}
 */
export const cancelExport = (exportId) => request("POST", `/api/exports/${encodeURIComponent(exportId)}/cancel`);

/**
 * A new export of the completed export's failed and missing images (202), or the set's export
 * already active (200).
 * @param {string} exportId
 * @returns {Promise<{status: number, body: Export}>}
 */
export const rerunExport = (exportId) => request("POST", `/api/exports/${encodeURIComponent(exportId)}/rerun`);
