// @ts-check
// Re-runs in words: which export the Re-run button sends again, its question, the line that
// says what a re-run re-ran, and the earlier results a set's card keeps reachable. Pure: no DOM.
import {plural} from "./dom.js";
import {completedName, isActive, isRerun, setName} from "./status.js";
import {rerunLabel} from "./summary.js";

/** @import {Export, SubjectSet} from "./types.js" */

/** How many earlier exports a card lists at most (a chain of re-runs is short in practice). */
export const MAX_EARLIER = 10;

/**
 * The completed export whose failed and missing images Re-run sends again: the set's last
 * completed export, when it has any and no export of the set is active. Null otherwise.
 * @param {SubjectSet} set
 * @returns {Export | null}
 */
export function rerunTarget(set) {
  const latest = set.latest_export;
  const completed = latest?.status === "completed" ? latest : set.latest_completed_export;
  if (isActive(latest)) return null;
  const images = completed?.rerun_images;
  return completed && typeof images === "number" && images > 0 ? completed : null;
}

/**
 * The note under Re-run: what it sends (naming the export when the card shows a newer one).
 * @param {SubjectSet} set
 * @param {Export} exp the re-run's target
 * @returns {string}
 */
export function rerunNote(set, exp) {
  return exp.id === set.latest_export?.id
    ? "Sends only the failed and missing images again, as a new task."
    : `Sends the failed and missing images of ${completedName(exp)} again, as a new task.`;
}

/**
 * The confirmation before a re-run.
 * @param {SubjectSet} set
 * @param {Export} exp the re-run's target
 * @returns {{title: string, text: string, keep: string, confirm: string}}
 */
export function rerunQuestion(set, exp) {
  const images = exp.rerun_images ?? 0;
  const these = images === 1 ? "The image" : `The ${plural(images, "image")}`;
  return {
    title: `${rerunLabel(images)} of “${setName(set)}”?`,
    text: `${these} that failed or went missing in ${completedName(exp)} go to the ML service again, as a new task that ` +
      "may take an hour or more. The results of that export stay in the Subject Assistant; the re-run's results " +
      "open in a task of their own.",
    keep: "No, don't re-run",
    confirm: `Yes, ${rerunLabel(images).toLowerCase()}`,
  };
}

/**
 * "Re-run of the failed and missing images of the export completed on …" for a re-run; null for a
 * plain export. `parent` is the export it re-ran, when known.
 * @param {Export | null | undefined} exp
 * @param {Export | null | undefined} parent
 * @returns {string | null}
 */
export function rerunOfWords(exp, parent) {
  if (!exp || !isRerun(exp)) return null;
  return `Re-run of the failed and missing images of ${parent ? completedName(parent) : "an earlier export"}.`;
}

/**
 * The completed exports whose results a set's card keeps reachable besides its latest export's:
 * the last completed export when the latest is another, and every export a re-run on the card
 * re-ran, nearest first (an earlier export still holds the results of every image its re-runs
 * did not send again). `known(id)` is an export read on its own: undefined when not read yet,
 * null when it cannot be read. `wanted` is the id to read next to complete the list.
 * @param {SubjectSet} set
 * @param {(id: string) => Export | null | undefined} known
 * @returns {{exports: Export[], wanted: string | null}}
 */
export function earlierExports(set, known) {
  const latest = set.latest_export;
  const completed = set.latest_completed_export;
  /** @type {Export[]} */
  const exports = [];
  const seen = new Set(latest ? [latest.id] : []);
  /** @type {string | null} */
  let wanted = null;
  /** @param {Export | string | null | undefined} start */
  const follow = (start) => {
    let next = start;
    while (next && !wanted && exports.length < MAX_EARLIER) {
      if (typeof next === "string" && seen.has(next)) return;
      const exp = typeof next === "string" ? known(next) : next;
      if (exp === undefined) {
        wanted = /** @type {string} */ (next);
        return;
      }
      if (exp === null || seen.has(exp.id)) return;
      seen.add(exp.id);
      exports.push(exp);
      next = exp.rerun_of;
    }
  };
  if (completed && completed.id !== latest?.id) follow(completed);
  if (latest && isRerun(latest)) follow(latest.rerun_of);
  return {exports, wanted};
}
