// @ts-check
// What an Export's state means, in words a person understands. Pure: no DOM.
import {count, formatDate, plural, safeHttpUrl} from "./dom.js";

/** @import {Export, SubjectSet} from "./types.js" */

export const ACTIVE = new Set(["queued", "building", "submitted", "running"]);

/**
 * @param {Export | null | undefined} exp
 * @returns {exp is Export}
 */
export function isActive(exp) {
  return Boolean(exp) && ACTIVE.has(/** @type {Export} */ (exp).status);
}

/**
 * How a subject set is named to people: its display name, or its id when it has none.
 * @param {Pick<SubjectSet, "id" | "display_name"> | null | undefined} set
 * @param {string} [id]
 * @returns {string}
 */
export function setName(set, id = set?.id) {
  return set?.display_name ?? `Subject set ${id}`;
}

/**
 * The headline: "Queued", "Reading subjects from Zooniverse (10 of 25)", "Completed", …
 * @param {Export} exp
 * @returns {string}
 */
export function statusLabel(exp) {
  switch (exp.status) {
    case "queued":
      return "Queued";
    case "building": {
      if (isRerun(exp)) return "Preparing the images to send again";
      const done = count(exp.progress?.subjects_done) ?? "0";
      const total = count(exp.progress?.subjects_total);
      return total ? `Reading subjects from Zooniverse (${done} of ${total})` : `Reading subjects from Zooniverse (${done} read)`;
    }
    case "submitted":
      return "Sent to the ML service";
    case "running":
      return "ML processing";
    case "completed":
      return "Completed";
    case "failed":
      return "Failed";
    case "cancelled":
      return "Cancelled";
    default:
      return "Unknown state";
  }
}

const WORDS = {
  queued: "queued",
  building: "reading subjects from Zooniverse",
  submitted: "sent to the ML service",
  running: "ML processing",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
};

/**
 * Short words for the live announcement: "Export of Camera A - March: completed".
 * @param {Export} exp
 * @returns {string}
 */
export function statusWord(exp) {
  if (exp.status === "building" && isRerun(exp)) return "preparing the images to send again";
  return WORDS[exp.status] ?? "state unknown";
}

const TITLE_WORDS = {
  queued: "Queued",
  building: "Reading subjects",
  submitted: "Sent to the ML service",
  running: "Running",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

/**
 * The state in the tab's title: "Running" in "Running · Camera A - March".
 * @param {Export} exp
 * @returns {string}
 */
export function titleWord(exp) {
  if (exp.status === "building" && isRerun(exp)) return "Preparing";
  return TITLE_WORDS[exp.status] ?? "Unknown state";
}

/**
 * The ML service got as far as running the task: the Subject Assistant handles only the ML
 * statuses running, completed and failed (created, problem and canceled show "ML Task
 * encountered an unknown error"). A cancel is accepted only for a running (or problem) task,
 * and the service then completes it with the part it had done, so a cancelled export whose
 * cancel reached the service counts. A failed export counts when its task got that far (the
 * Subject Assistant then shows the ML service's message), unless the service lost the task.
 * @param {Export} exp
 * @returns {boolean}
 */
function reachedRunning(exp) {
  if (!exp.ml_task_id) return false;
  switch (exp.status) {
    case "running":
      return exp.ml_status === "running";
    case "completed":
      return true;
    case "cancelled":
      return exp.ml_status === "canceled" || exp.ml_status === "running" || exp.ml_status === "completed";
    case "failed":
      return (exp.ml_status === "running" || exp.ml_status === "completed" || exp.ml_status === "failed") &&
        exp.error?.code !== "ml_task_not_found";
    default:
      return false;
  }
}

/** @typedef {{url: string, kind: "running" | "completed" | "partial" | "failed", text: string}} AssistantLink */

/**
 * The link to the Subject Assistant, only when the Subject Assistant can open it, named by what
 * it shows.
 * @param {Export | null | undefined} exp
 * @returns {AssistantLink | null}
 */
export function assistantLink(exp) {
  if (!exp || !reachedRunning(exp)) return null;
  const url = safeHttpUrl(exp.subject_assistant_url);
  if (!url) return null;
  if (exp.status === "running") return {url, kind: "running", text: "Open the running task in the Subject Assistant"};
  if (exp.status === "cancelled") return {url, kind: "partial", text: "Partial results of the cancelled export"};
  if (exp.status === "failed") return {url, kind: "failed", text: "The failed export's task in the Subject Assistant"};
  return {url, kind: "completed", text: completedLinkText(exp)};
}

/**
 * The export sends again the failed and missing images of another (POST …/rerun).
 * @param {Export | null | undefined} exp
 * @returns {boolean}
 */
export function isRerun(exp) {
  return typeof exp?.rerun_of === "string" && exp.rerun_of !== "";
}

/**
 * What an export is called in a sentence's first words: "Export" or "Re-run".
 * @param {Export} exp
 * @returns {string}
 */
export function exportNoun(exp) {
  return isRerun(exp) ? "Re-run" : "Export";
}

/**
 * "the export completed on Dec 2, 2026, 11:30 AM" (or "the re-run …"): how a completed export is
 * named wherever the page refers to it, so each mention matches its link's name.
 * @param {Export} exp a completed export
 * @returns {string}
 */
export function completedName(exp) {
  const noun = isRerun(exp) ? "re-run" : "export";
  const when = formatDate(exp.updated_at);
  return when ? `the ${noun} completed on ${when}` : `the completed ${noun}`;
}

/**
 * @param {Export} exp a completed export
 * @returns {string}
 */
export function completedLinkText(exp) {
  return `Results of ${completedName(exp)}`;
}

/**
 * Words beside (or instead of) the link: why there is no link yet, or what the Subject
 * Assistant shows while the task runs. Null when there is nothing to say.
 * @param {Export | null | undefined} exp
 * @returns {string | null}
 */
export function linkNote(exp) {
  if (!exp) return null;
  switch (exp.status) {
    case "queued":
    case "building":
    case "submitted":
      return "The Subject Assistant link appears here once the ML service starts working on the task.";
    case "running":
      return exp.ml_status === "running"
        ? "Until the results are ready, the Subject Assistant says the task is still running."
        : "The Subject Assistant cannot open the task while the ML service reports a problem; the link comes back when the task runs again.";
    default:
      return null;
  }
}

/**
 * A sentence under the headline: what is happening now and what to expect.
 * @param {Export} exp
 * @returns {string}
 */
export function statusDetail(exp) {
  switch (exp.status) {
    // A re-run reads nothing from Zooniverse: it sends rows recorded when its parent completed.
    case "queued":
      return isRerun(exp)
        ? "Waiting its turn to list the images to send again; that usually starts within seconds."
        : "Waiting its turn to read this set from Zooniverse; that usually starts within seconds.";
    case "building":
      return isRerun(exp)
        ? "Listing the images that failed or went missing, to send them to the ML service again."
        : "Reading the set's subjects from Zooniverse and listing their images for the ML service.";
    case "submitted":
      return "The ML service has the list of images and is preparing the task. Results may take an hour or more.";
    case "running":
      return exp.ml_status === "problem"
        ? "The ML service reported a problem with the task and is retrying it. Results may take an hour or more."
        : "The ML service is looking for animals, people and vehicles in each image. Results may take an hour or more.";
    case "completed":
      return "The ML service has finished. Review the results, and retire or move the empty images, in the Subject Assistant.";
    case "failed": {
      const given = exp.error && typeof exp.error.message === "string" ? exp.error.message.trim() : "";
      const message = given ? (/[.!?]$/.test(given) ? given : `${given}.`) : "The export did not finish.";
      // An empty set fails the same way again: its message says what to do instead.
      return exp.error?.code === "subject_set_empty" ? message : `${message} To try again, press Export.`;
    }
    case "cancelled":
      return assistantLink(exp)
        ? "This export was cancelled. The ML service may still finish the part it had done; those partial results open in the Subject Assistant."
        : "This export was cancelled before the ML service started on it. Press Export to start a new one.";
    default:
      return "";
  }
}

/**
 * "Sent 49 images from 25 subjects (1 frame that is not an image was left out)." once the
 * manifest is built; null before.
 * @param {Export | null | undefined} exp
 * @returns {string | null}
 */
export function sentSentence(exp) {
  const manifest = exp?.manifest;
  const images = plural(manifest?.images, "image");
  const subjects = plural(manifest?.subjects, "subject");
  if (!images || !subjects) return null;
  const skipped = manifest?.skipped_frames;
  const left = typeof skipped === "number" && skipped > 0
    ? ` (${plural(skipped, "frame")} that ${skipped === 1 ? "is" : "are"} not an image, such as a video, left out)`
    : "";
  return `Sent ${images} from ${subjects}${left}.`;
}

/**
 * The results that exist for a set and stay when it is exported again: the latest export's, when
 * it completed or was cancelled after its task started (partial results), and the last completed
 * export's. Null when the latest export has none (then Export does not ask).
 * @param {SubjectSet} set
 * @returns {{images: number | null, words: string} | null}
 */
export function existingResults(set) {
  const exp = set.latest_export;
  if (!exp) return null;
  // A re-run sent only some of the set's images: its count is not what Export sends again.
  const images = isRerun(exp) ? null : exp.manifest?.images ?? null;
  if (exp.status === "completed") return {images, words: `The results of ${completedName(exp)} are`};
  if (exp.status !== "cancelled" || !assistantLink(exp)) return null;
  const partial = `The partial results of the export cancelled on ${formatDate(exp.updated_at)}`;
  const completed = set.latest_completed_export;
  return completed && completed.id !== exp.id
    ? {images, words: `${partial}, and the results of ${completedName(completed)}, are`}
    : {images, words: `${partial} are`};
}

/**
 * The confirmation before exporting a set again (null: no results exist, no need to ask).
 * @param {SubjectSet} set
 * @returns {{title: string, text: string} | null}
 */
export function exportAgainQuestion(set) {
  const existing = existingResults(set);
  if (!existing) return null;
  const images = plural(existing.images, "image");
  return {
    title: `Export “${setName(set)}” again?`,
    text: `${existing.words} in the Subject Assistant and stay there. Exporting again sends ${images ? `all ${images}` : "all of the set's images"} ` +
      "to the ML service once more, as a new task that may take an hour or more.",
  };
}

/**
 * The cancel confirmation's words for the export as it is now.
 * @param {SubjectSet} set
 * @param {Export} exp
 * @returns {string}
 */
export function cancelQuestion(set, exp) {
  const name = setName(set);
  if ((exp.status === "queued" || exp.status === "building") && isRerun(exp)) {
    return `The re-run of “${name}” stops now. None of its images have gone to the ML service yet.`;
  }
  if (exp.status === "queued" || exp.status === "building") {
    return `The export of “${name}” stops now. It is still reading the set from Zooniverse, so none of its images have gone to the ML service.`;
  }
  if (exp.status === "submitted") {
    return `The ML service has task ${exp.ml_task_id} for “${name}” and is still preparing it. It cancels a task only once it is running, ` +
      "so it may refuse now: then try again in a few minutes.";
  }
  return `The ML service is asked to cancel task ${exp.ml_task_id} of “${name}”. It may still finish the part it had done, ` +
    "and the Subject Assistant link stays, so you can see those partial results.";
}
