// @ts-check
// The results summary of a completed export, in words. It reads the contract's keys
// (images_sent, images_scored, failures, subjects_sent, …) and falls back to the first release's
// (images_submitted, images_returned, failed_shards), since both may be served for a while.
// All of the summary's rendering lives here.
import {count, fill, h, plural} from "./dom.js";

/** @import {Export, ResultsSummary} from "./types.js" */
/** @typedef {{label: string, value: string}} Item */
/** @typedef {{items: Item[], likelyEmpty: string | null, help: string[]}} Summary */

/**
 * @param {unknown} value
 * @returns {value is number}
 */
function isCount(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/**
 * "Likely empty" in the Subject Assistant's own terms: it filters images by how likely they are
 * to be empty, 1 - max_detection_conf, in percent ("with at least one image that is >= 50 %
 * likely to be empty" by default). The contract counts max_detection_conf <= threshold
 * ("50% or more"), the first release max_detection_conf < threshold ("more than 80%").
 * @param {ResultsSummary} summary
 * @returns {string | null}
 */
export function likelyEmptyWords(summary) {
  const threshold = summary.likely_empty_threshold;
  if (!isCount(threshold) || threshold < 0 || threshold > 1) return null;
  const percent = Math.round((1 - threshold) * 100);
  const contract = isCount(summary.images_scored) || isCount(summary.images_sent);
  const phrase = contract ? `${percent}% or more likely to be empty` : `more than ${percent}% likely to be empty`;
  const filter = contract && percent === 50 ? ", what its default filter selects" : "";
  return `“Likely empty” means ${phrase}, in the Subject Assistant's terms${filter}.`;
}

/**
 * The summary as labelled numbers and sentences; {unavailable} when the service could not read
 * the results; null when there is no summary (not completed).
 * @param {Export} exp
 * @returns {Summary | {unavailable: string} | null}
 */
export function summarize(exp) {
  const summary = exp.results_summary;
  if (!summary || typeof summary !== "object") return null;
  if (summary.available !== true) {
    const reason = typeof summary.reason === "string" && summary.reason ? summary.reason : "no reason was given";
    return {unavailable: `Results summary unavailable: ${reason}`};
  }
  const sent = summary.images_sent ?? summary.images_submitted ?? exp.manifest?.images;
  const failed = summary.images_failed;
  const scored = summary.images_scored ??
    (isCount(summary.images_returned) && isCount(failed) ? summary.images_returned - failed : undefined);
  const subjects = summary.subjects_sent ?? exp.manifest?.subjects;
  /** @type {[string, unknown][]} */
  const numbers = [
    ["Subjects", subjects],
    ["Images sent", sent],
    ["Scored", scored],
    ["Likely empty", summary.images_likely_empty],
    ["Failed", failed],
    ["Missing", summary.images_missing],
  ];
  /** @type {Item[]} */
  const items = [];
  for (const [label, value] of numbers) {
    const text = count(value);
    if (text !== null) items.push({label, value: text});
  }

  const skipped = exp.manifest?.skipped_frames;
  const help = [
    "Subjects and images: a subject is what volunteers classify, and it can hold several images. The ML service looks at each image on its own" +
      (isCount(skipped) && skipped > 0
        ? `; ${plural(skipped, "frame")} that ${skipped === 1 ? "is" : "are"} not an image (such as a video) ${skipped === 1 ? "was" : "were"} left out.`
        : "."),
    "Scored: images the ML service looked at and gave a result for.",
    "Failed: images the ML service tried but could not process, for example because the image could not be downloaded." +
      failureReasons(summary.failures),
    "Missing: images that were sent but are not in the results at all, usually because a part of the ML service's job failed." +
      (isCount(summary.failed_shards) && summary.failed_shards > 0 ? ` ${plural(summary.failed_shards, "part")} of this job failed.` : ""),
    "Failed and missing images have no result in the Subject Assistant.",
  ];
  return {items, likelyEmpty: likelyEmptyWords(summary), help};
}

/**
 * @param {Record<string, number> | null | undefined} failures
 * @returns {string}
 */
function failureReasons(failures) {
  if (!failures || typeof failures !== "object") return "";
  const reasons = Object.entries(failures)
    .filter(([reason, n]) => reason && isCount(n) && n > 0)
    .map(([reason, n]) => `“${reason}” (${plural(n, "image")})`);
  return reasons.length ? ` The ML service said: ${reasons.join(", ")}.` : "";
}

/**
 * Fill `area` with the completed export's summary (or hide it). Rebuilt only when the summary
 * changed, so a refresh neither moves focus nor closes the explanation someone opened.
 * @param {HTMLElement} area
 * @param {Export | null | undefined} exp
 */
export function renderSummary(area, exp) {
  const summary = exp?.status === "completed" ? summarize(exp) : null;
  area.hidden = !summary;
  const key = summary ? JSON.stringify(summary) : "";
  if (area.dataset.key === key) return;
  area.dataset.key = key;
  if (!summary) {
    area.replaceChildren();
  } else if ("unavailable" in summary) {
    fill(area, h("p", {class: "summary-note", text: summary.unavailable}));
  } else {
    fill(area,
      h("dl", {class: "summary"}, summary.items.map(({label, value}) =>
        h("div", {class: "summary-item"}, h("dt", {text: label}), h("dd", {text: value})))),
      summary.likelyEmpty && h("p", {class: "summary-note", text: summary.likelyEmpty}),
      h("details", {class: "summary-help"},
        h("summary", {text: "What these numbers mean"}),
        h("ul", {}, summary.help.map((text) => h("li", {text})))));
  }
}
