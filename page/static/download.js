// @ts-check
// The results CSV link: a plain link to the CSV blob's read-only SAS URL, which the browser
// downloads (a navigation: the page's connect-src does not apply to it). The service mints that
// URL each time the export is read, valid for at most an hour; a link this page has held for too
// long is renewed when clicked (the export is read again) and then followed.
import {h, safeHttpUrl, setText} from "./dom.js";

/** @import {Export} from "./types.js" */
/** @import {ApiError} from "./api.js" */

/** When this page first saw each link (Date.now()): the same URL shown again is no fresher. */
const firstSeen = new Map();
const FORGET_AFTER_MS = 3 * 60 * 60 * 1000;

/**
 * @param {string} url
 * @returns {number}
 */
function seenAt(url) {
  const now = Date.now();
  let at = firstSeen.get(url);
  if (at === undefined) {
    for (const [old, when] of firstSeen) if (now - when > FORGET_AFTER_MS) firstSeen.delete(old);
    at = now;
    firstSeen.set(url, at);
  }
  return at;
}

/**
 * How long after it was read (at `readAt`, this clock) a SAS link may still be followed, in ms:
 * half of what its expiry (`se`) leaves, judged both by this clock and by the link's own start
 * (`st`), so that a clock that is off does not hand out an expired link. 0 (renew first) when the
 * link says nothing about its expiry.
 * @param {string} url
 * @param {number} readAt
 * @returns {number}
 */
export function usableFor(url, readAt) {
  let params;
  try {
    params = new URL(url).searchParams;
  } catch {
    return 0;
  }
  const expiry = Date.parse(params.get("se") ?? "");
  if (!Number.isFinite(expiry)) return 0;
  const start = Date.parse(params.get("st") ?? "");
  const left = Number.isFinite(start) ? Math.min(expiry - readAt, expiry - start) : expiry - readAt;
  return Math.max(0, left / 2);
}

export class CsvLink {
  /**
   * @param {string} text the link's words
   * @param {string} describedBy ids of what tells this link from the other cards' and entries'
   * @param {(exportId: string) => Promise<Export>} reread reads the export again (a new link)
   */
  constructor(text, describedBy, reread) {
    this.reread = reread;
    this.exportId = "";
    this.url = "";
    this.renewing = false;
    this.link = h("a", {class: "csv-link", "aria-describedby": describedBy, text});
    this.reason = h("span", {class: "csv-reason"});
    this.error = h("span", {class: "csv-error set-error", role: "alert"});
    this.el = h("p", {class: "csv", hidden: true}, this.link, this.reason, this.error);
    this.link.addEventListener("click", (event) => this.clicked(event));
  }

  /**
   * The export's CSV link; when it has none, the summary's reason why (nothing when it gives none).
   * @param {Export | null | undefined} exp
   */
  show(exp) {
    const url = exp?.status === "completed" ? safeHttpUrl(exp.results_csv_url) : null;
    const reason = exp?.status === "completed" && !url && exp.results_summary?.available === true &&
      typeof exp.results_summary.csv_reason === "string" ? exp.results_summary.csv_reason : "";
    if (exp?.id !== this.exportId) setText(this.error, "");
    this.exportId = exp?.id ?? "";
    this.el.hidden = !url && !reason;
    this.link.hidden = !url;
    setText(this.reason, reason);
    this.setUrl(url);
  }

  /** @param {string | null} url */
  setUrl(url) {
    this.url = url ?? "";
    if (!url) {
      this.link.removeAttribute("href");
    } else {
      seenAt(url);
      if (this.link.getAttribute("href") !== url) this.link.href = url;
    }
  }

  /**
   * A link held too long: read the export again for a new one and follow that instead.
   * @param {MouseEvent} event
   */
  async clicked(event) {
    const url = this.url;
    if (url && Date.now() - seenAt(url) < usableFor(url, seenAt(url))) return; // followed as it is
    event.preventDefault();
    if (this.renewing || !this.exportId) return;
    this.renewing = true;
    setText(this.error, "");
    try {
      const fresh = safeHttpUrl((await this.reread(this.exportId)).results_csv_url);
      if (!fresh) {
        setText(this.error, "The results CSV is no longer available. Reload the page to see why.");
        return;
      }
      this.setUrl(fresh);
      window.location.assign(fresh);
    } catch (caught) {
      const error = /** @type {ApiError} */ (caught);
      if (error.status !== 401) setText(this.error, `The download link could not be renewed. ${error.message}`);
    } finally {
      this.renewing = false;
    }
  }
}
