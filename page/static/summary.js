// @ts-check
// The results summary of a completed export, in words. It reads the contract's keys
// (images_sent, images_scored, failures, subjects_sent, …) and falls back to the first release's
// (images_submitted, images_returned, failed_shards), since both may be served for a while.
// Images that have no result get a warning: the Subject Assistant shows a failed image as 100%
// likely to be empty (the deployed service writes it with max_detection_conf 0.0), and never
// shows a missing one. All of the summary's rendering lives here.
import {count, fill, h, plural} from "./dom.js";

/** @import {Export, ResultsSummary} from "./types.js" */
/** @typedef {{label: string, value: string}} Item */
/** @typedef {{title: string, items: Item[]}} Group */
/** @typedef {{lead: string, text: string}} Warning */
/** @typedef {{groups: Group[], likelyEmpty: string | null, warnings: Warning[], help: string[]}} Summary */

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
  const missing = summary.images_missing;
  const subjects = summary.subjects_sent ?? exp.manifest?.subjects;
  const groups = [
    group("Images", [
      ["Sent", sent],
      ["Scored", scored],
      ["Likely empty", summary.images_likely_empty],
      ["Failed", failed],
      ["Missing", missing],
    ]),
    group("Subjects", [
      ["Sent", subjects],
      ["All images likely empty", summary.subjects_all_likely_empty],
      ["With failed or missing images", summary.subjects_incomplete],
    ]),
  ].filter((g) => g.items.length > 0);

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
  if (isCount(summary.subjects_all_likely_empty)) {
    help.push("All images likely empty: subjects whose images were all scored and are all likely empty. " +
      "These are the subjects the Subject Assistant's filter selects with the least doubt.");
  }
  if (isCount(summary.subjects_incomplete)) {
    help.push("With failed or missing images: subjects with at least one image that has no result.");
  }
  if (isCount(summary.images_unknown) && summary.images_unknown > 0) {
    help.push(`The ML service's results also held ${plural(summary.images_unknown, "image")} that this export did not send; ` +
      `${summary.images_unknown === 1 ? "it was" : "they were"} left out of these numbers.`);
  }
  return {groups, likelyEmpty: likelyEmptyWords(summary), warnings: warnings(failed, missing, exp), help};
}

/**
 * @param {string} title
 * @param {[string, unknown][]} numbers
 * @returns {Group}
 */
function group(title, numbers) {
  /** @type {Item[]} */
  const items = [];
  for (const [label, value] of numbers) {
    const text = count(value);
    if (text !== null) items.push({label, value: text});
  }
  return {title, items};
}

/**
 * What a person must know before retiring anything, when some images have no result.
 * @param {unknown} failed
 * @param {unknown} missing
 * @param {Export} exp
 * @returns {Warning[]}
 */
function warnings(failed, missing, exp) {
  /** @type {Warning[]} */
  const out = [];
  if (isCount(failed) && failed > 0) {
    out.push({
      lead: `${plural(failed, "image")} failed.`,
      text: "The Subject Assistant shows a failed image as 100% likely to be empty, so its filter selects it with the empty ones. " +
        `Do not retire or move a subject because of ${failed === 1 ? "it" : "them"}.`,
    });
  }
  if (isCount(missing) && missing > 0) {
    out.push({
      lead: `${plural(missing, "image")} ${missing === 1 ? "is" : "are"} missing from the results.`,
      text: `The Subject Assistant does not show ${missing === 1 ? "it" : "them"} at all.`,
    });
  }
  const rerun = exp.rerun_images;
  if (out.length && isCount(rerun) && rerun > 0) {
    out.push({
      lead: "",
      text: `“${rerunLabel(rerun)}” sends only ${rerun === 1 ? "that image" : "these images"} to the ML service again, as a new task.` +
        (exp.results_csv_url ? " The results CSV shows which subjects they belong to." : ""),
    });
  }
  return out;
}

/**
 * The Re-run button's name: "Re-run 4 images".
 * @param {number} images
 * @returns {string}
 */
export function rerunLabel(images) {
  return `Re-run ${plural(images, "image")}`;
}

/**
 * The short warning beside an earlier export's results, when some of its images failed: the
 * Subject Assistant still shows them there as empty.
 * @param {Export} exp
 * @returns {string | null}
 */
export function failedImagesNote(exp) {
  const failed = exp.results_summary?.available === true ? exp.results_summary.images_failed : undefined;
  if (!isCount(failed) || failed <= 0) return null;
  return `There the Subject Assistant shows ${failed === 1 ? "its failed image" : `its ${plural(failed, "failed image")}`} ` +
    `as 100% likely to be empty: do not retire or move a subject because of ${failed === 1 ? "it" : "them"}.`;
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
      summary.groups.map(({title, items}) => h("div", {class: "summary-group"},
        h("h3", {class: "summary-title", text: title}),
        h("dl", {class: "summary"}, items.map(({label, value}) =>
          h("div", {class: "summary-item"}, h("dt", {text: label}), h("dd", {text: value})))))),
      summary.likelyEmpty && h("p", {class: "summary-note", text: summary.likelyEmpty}),
      summary.warnings.length > 0 && h("div", {class: "notice notice-warning results-warning"},
        summary.warnings.map(({lead, text}) => h("p", {}, lead && h("strong", {text: lead}), lead && " ", text))),
      h("details", {class: "summary-help"},
        h("summary", {text: "What these numbers mean"}),
        h("ul", {}, summary.help.map((text) => h("li", {text})))));
  }
}
