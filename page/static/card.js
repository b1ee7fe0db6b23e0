// @ts-check
// One subject set's card: its name, its latest export in words, the Subject Assistant link when
// the Subject Assistant can open it, the results CSV, the results summary, the earlier results
// that still matter (the last completed export, and what a re-run re-ran), and Export / Re-run /
// Cancel, each with the note that explains it. Built once per set and updated in place, so focus,
// scroll position and layout stay put while the state changes.
import {formatDate, h, plural, setText} from "./dom.js";
import {CsvLink} from "./download.js";
import {earlierExports, rerunNote, rerunOfWords, rerunTarget} from "./rerun.js";
import {
  assistantLink, completedLinkText, isActive, isRerun, linkNote, sentSentence, setName, statusDetail, statusLabel,
} from "./status.js";
import {failedImagesNote, renderSummary, rerunLabel} from "./summary.js";

/** @import {Export, SubjectSet} from "./types.js" */
/** @typedef {(id: string) => Export | null | undefined} Lookup an export read on its own (undefined: not yet; null: unreadable) */

/**
 * @typedef {object} Earlier one earlier export's results on a card
 * @property {HTMLLIElement} el
 * @property {HTMLAnchorElement} link
 * @property {HTMLSpanElement} linkText
 * @property {HTMLElement} taskId
 * @property {HTMLParagraphElement} note
 * @property {CsvLink} csv
 */

/**
 * @typedef {object} Card
 * @property {string} id
 * @property {SubjectSet} set
 * @property {HTMLLIElement} el
 * @property {HTMLHeadingElement} name
 * @property {HTMLParagraphElement} meta
 * @property {HTMLSpanElement} badge
 * @property {HTMLSpanElement} when
 * @property {HTMLProgressElement} progress
 * @property {HTMLParagraphElement} detail
 * @property {HTMLParagraphElement} rerunOf what a re-run re-ran
 * @property {HTMLParagraphElement} sent
 * @property {HTMLParagraphElement} results
 * @property {HTMLAnchorElement} link
 * @property {HTMLSpanElement} linkText
 * @property {HTMLSpanElement} task
 * @property {HTMLElement} taskId
 * @property {HTMLParagraphElement} linkNote
 * @property {CsvLink} csv
 * @property {HTMLDivElement} summary
 * @property {HTMLDivElement} earlier
 * @property {HTMLUListElement} earlierList
 * @property {Map<string, Earlier>} earlierEntries by export id
 * @property {HTMLButtonElement} export
 * @property {HTMLParagraphElement} reason
 * @property {HTMLParagraphElement} exportError
 * @property {HTMLButtonElement} rerun
 * @property {HTMLParagraphElement} rerunNote
 * @property {HTMLParagraphElement} rerunError
 * @property {Export | null} rerunTarget the completed export Re-run sends again
 * @property {string | null} wanted an earlier export to read for the card to be complete
 * @property {HTMLButtonElement} cancel
 * @property {HTMLParagraphElement} cancelNote
 * @property {HTMLParagraphElement} cancelError
 * @property {boolean} starting an Export request is on its way
 * @property {boolean} rerunning a Re-run request is on its way
 * @property {boolean} checking the export is being re-read before the cancel question
 * @property {boolean} cancelInFlight a Cancel request is on its way
 * @property {boolean} watched an export of this set was active while the page showed it
 */

/**
 * A link that opens in a new tab, described by the set's name (several cards have such links).
 * @param {string} base
 * @param {HTMLSpanElement} text
 * @returns {HTMLAnchorElement}
 */
function newTabLink(base, text) {
  return h("a", {target: "_blank", rel: "noopener noreferrer", class: "results-link", "aria-describedby": `${base}-name`},
    text, h("span", {class: "visually-hidden", text: " (opens in a new tab)"}));
}

/**
 * @typedef {object} Actions
 * @property {(card: Card) => void} onExport
 * @property {(card: Card) => void} onRerun
 * @property {(card: Card) => void} onCancel
 * @property {(exportId: string) => Promise<Export>} reread reads an export again (for a new CSV link)
 */

/**
 * @param {SubjectSet} set
 * @param {Actions} actions
 * @returns {Card}
 */
export function createCard(set, actions) {
  const base = `set-${set.id}`;
  const linkText = h("span");
  const taskId = h("code", {class: "task-id"});
  /** @type {Card} */
  const card = {
    id: String(set.id),
    set,
    el: h("li", {class: "set", "data-set-id": set.id}),
    name: h("h2", {id: `${base}-name`, class: "set-name"}),
    meta: h("p", {class: "set-meta"}),
    badge: h("span", {class: "badge"}),
    when: h("span", {class: "state-when"}),
    progress: h("progress", {class: "progress", max: "1", value: "0", hidden: true}),
    detail: h("p", {class: "state-detail"}),
    rerunOf: h("p", {class: "rerun-of", hidden: true}),
    sent: h("p", {class: "sent", hidden: true}),
    results: h("p", {class: "results", hidden: true}),
    link: newTabLink(base, linkText),
    linkText,
    task: h("span", {class: "task"}, "ML task ID: ", taskId),
    taskId,
    linkNote: h("p", {class: "link-note", hidden: true}),
    csv: new CsvLink("Download results (CSV)", `${base}-name`, actions.reread),
    summary: h("div", {class: "summary-area", hidden: true}),
    earlier: h("div", {class: "earlier", hidden: true}),
    earlierList: h("ul", {class: "earlier-list", "aria-labelledby": `${base}-earlier`}),
    earlierEntries: new Map(),
    export: h("button", {type: "button", class: "btn primary", "aria-describedby": `${base}-name ${base}-reason`, text: "Export"}),
    reason: h("p", {id: `${base}-reason`, class: "reason"}),
    exportError: h("p", {class: "set-error export-error", role: "alert"}),
    rerun: h("button", {type: "button", class: "btn secondary", "aria-describedby": `${base}-name ${base}-rerun-note`, hidden: true}),
    rerunNote: h("p", {id: `${base}-rerun-note`, class: "reason rerun-note"}),
    rerunError: h("p", {class: "set-error rerun-error", role: "alert"}),
    rerunTarget: null,
    wanted: null,
    cancel: h("button", {type: "button", class: "btn danger", "aria-describedby": `${base}-name`, text: "Cancel export", hidden: true}),
    cancelNote: h("p", {class: "cancel-note"}),
    cancelError: h("p", {class: "set-error cancel-error", role: "alert"}),
    starting: false,
    rerunning: false,
    checking: false,
    cancelInFlight: false,
    watched: false,
  };
  card.export.addEventListener("click", () => actions.onExport(card));
  card.rerun.addEventListener("click", () => actions.onRerun(card));
  card.cancel.addEventListener("click", () => actions.onCancel(card));
  card.results.append(card.link, " ", card.task);
  card.earlier.append(h("h3", {id: `${base}-earlier`, class: "earlier-title", text: "Earlier results"}), card.earlierList);
  card.el.append(
    h("div", {class: "set-head"}, card.name, card.meta),
    h("div", {class: "set-state"},
      h("p", {class: "state-line"}, card.badge, " ", card.when),
      card.progress, card.rerunOf, card.detail, card.sent, card.results, card.linkNote, card.csv.el, card.summary, card.earlier),
    h("div", {class: "set-actions"},
      h("div", {class: "action"}, card.export, card.reason, card.exportError),
      h("div", {class: "action rerun-action"}, card.rerun, card.rerunNote, card.rerunError),
      h("div", {class: "action"}, card.cancel, card.cancelNote, card.cancelError)));
  return card;
}

/**
 * One earlier export's entry: its Subject Assistant link and task id, a warning when some of its
 * images failed (they still look empty there), and its CSV.
 * @param {string} base
 * @param {Export} exp
 * @param {(exportId: string) => Promise<Export>} reread
 * @returns {Earlier}
 */
function createEarlier(base, exp, reread) {
  const id = `${base}-earlier-${exp.id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const linkText = h("span", {id});
  const taskId = h("code", {class: "task-id"});
  /** @type {Earlier} */
  const entry = {
    el: h("li", {class: "earlier-entry"}),
    link: newTabLink(base, linkText),
    linkText,
    taskId,
    note: h("p", {class: "earlier-note", hidden: true}),
    csv: new CsvLink("Download these results (CSV)", id, reread),
  };
  entry.el.append(
    h("p", {class: "earlier-line"}, entry.link, " ", h("span", {class: "task"}, "ML task ID: ", taskId)),
    entry.note, entry.csv.el);
  return entry;
}

/**
 * @param {Earlier} entry
 * @param {Export} exp
 */
function updateEarlier(entry, exp) {
  const link = assistantLink(exp);
  entry.link.hidden = !link;
  if (link) entry.link.href = link.url;
  setText(entry.linkText, completedLinkText(exp));
  setText(entry.taskId, exp.ml_task_id);
  const note = failedImagesNote(exp);
  entry.note.hidden = !note;
  setText(entry.note, note);
  entry.csv.show(exp);
}

/**
 * Show `set` on its card. Returns the button that should take keyboard focus because the one
 * that had it just became unusable (null: focus stays where it is).
 * @param {Card} card
 * @param {SubjectSet} set
 * @param {Lookup} known earlier exports read on their own
 * @param {(exportId: string) => Promise<Export>} reread
 * @returns {HTMLElement | null}
 */
export function updateCard(card, set, known, reread) {
  const focused = document.activeElement;
  card.set = set;
  const name = setName(set);
  setText(card.name, name);
  setText(card.meta, `Subject set ${set.id} · ${plural(set.subjects_count, "subject") ?? "subject count unknown"}`);

  const exp = set.latest_export;
  const active = isActive(exp);
  card.watched ||= active;
  card.el.dataset.status = exp ? exp.status : "none";
  // A card that showed an active export keeps the room its results will need (and keeps it
  // afterwards): nothing below moves while the export goes on by itself.
  card.el.classList.toggle("watched", card.watched);
  card.badge.className = `badge badge-${exp ? exp.status : "none"}`;
  if (!exp) {
    setText(card.badge, "Not exported yet");
    setText(card.when, "");
    setText(card.detail, set.subjects_count === 0
      ? "Nothing to send to the ML service yet."
      : "Export sends this set's images to the ML service (MegaDetector), which looks for animals, people and vehicles in each of them.");
  } else {
    setText(card.badge, statusLabel(exp));
    const at = exp.status === "queued" || !exp.updated_at ? exp.created_at : exp.updated_at;
    setText(card.when, active ? `Started ${formatDate(exp.created_at)}` : `Finished ${formatDate(at)}`);
    setText(card.detail, statusDetail(exp));
  }

  // A re-run says what it re-ran (the export's own results are listed below as earlier results).
  const parentId = isRerun(exp) ? /** @type {string} */ (exp?.rerun_of) : null;
  const parent = parentId ? (set.latest_completed_export?.id === parentId ? set.latest_completed_export : known(parentId)) : null;
  const rerunOf = rerunOfWords(exp, parent);
  card.rerunOf.hidden = !rerunOf;
  setText(card.rerunOf, rerunOf);

  // Progress bar while the worker reads Panoptes (a re-run reads nothing there).
  const building = exp?.status === "building" && !isRerun(exp);
  card.progress.hidden = !building;
  if (exp && building) {
    const total = exp.progress?.subjects_total;
    const done = exp.progress?.subjects_done ?? 0;
    if (typeof total === "number" && total > 0) {
      card.progress.max = total;
      card.progress.value = Math.min(done, total);
    } else {
      card.progress.removeAttribute("value"); // indeterminate
    }
    card.progress.setAttribute("aria-label", `Subjects read from Zooniverse for ${name}`);
  }

  // What was sent (the completed summary says it with the rest).
  const sent = exp && exp.status !== "completed" ? sentSentence(exp) : null;
  card.sent.hidden = !sent;
  setText(card.sent, sent);

  // The Subject Assistant link once it can open the task; the task id for support from the
  // moment there is one; words for the time before.
  const link = assistantLink(exp);
  card.results.hidden = !exp?.ml_task_id;
  card.link.hidden = !link;
  if (link) {
    card.link.href = link.url;
    setText(card.linkText, link.text);
  } else {
    card.link.removeAttribute("href");
  }
  setText(card.taskId, exp?.ml_task_id);
  const note = linkNote(exp);
  card.linkNote.hidden = !note;
  setText(card.linkNote, note);

  card.csv.show(exp);
  renderSummary(card.summary, exp);

  // The results that still matter besides the latest export's: the last completed export when a
  // newer one is running, failed or cancelled, and what a re-run re-ran (its images that were
  // not sent again have their only results there).
  const earlier = earlierExports(set, known);
  card.wanted = earlier.wanted;
  showEarlier(card, earlier.exports, reread);

  // Re-run the last completed export's failed and missing images, while nothing is active.
  const target = card.rerunning ? card.rerunTarget : rerunTarget(set);
  card.rerunTarget = target;
  card.rerun.hidden = !target;
  card.rerun.disabled = card.rerunning || card.starting;
  setText(card.rerun, target ? rerunLabel(target.rerun_images ?? 0) : "");
  setText(card.rerunNote, card.rerunning ? "Starting the re-run…" : target ? rerunNote(set, target) : "");

  // Export, unless one is active or the set has nothing to export; Cancel while one is active.
  const empty = set.subjects_count === 0;
  card.export.disabled = active || empty || card.starting || card.rerunning;
  setText(card.reason, card.starting
    ? "Starting the export…"
    : active
      ? "You can export this set again when this export ends."
      : empty
        ? "This set has no subjects. Add images to it in the Zooniverse Project Builder, then export it."
        : "");
  card.cancel.hidden = !active;
  card.cancel.disabled = !active || card.cancelInFlight;
  setText(card.cancelNote, card.cancelInFlight ? "Cancelling…" : card.checking ? "Checking the export's state…" : "");

  // A button that just became unusable hands keyboard focus to its neighbour.
  if (focused === card.export && card.export.disabled) return card.cancel;
  if (focused === card.rerun && (card.rerun.hidden || card.rerun.disabled) && !card.rerunning) return active ? card.cancel : card.export;
  if (focused === card.cancel && !active) return card.export;
  return null;
}

/**
 * The earlier results, each entry kept in place while it stays (focus stays on its links).
 * @param {Card} card
 * @param {Export[]} exports
 * @param {(exportId: string) => Promise<Export>} reread
 */
function showEarlier(card, exports, reread) {
  const base = `set-${card.id}`;
  /** @type {HTMLLIElement[]} */
  const ordered = [];
  const kept = new Set();
  for (const exp of exports) {
    let entry = card.earlierEntries.get(exp.id);
    if (!entry) {
      entry = createEarlier(base, exp, reread);
      card.earlierEntries.set(exp.id, entry);
    }
    updateEarlier(entry, exp);
    kept.add(exp.id);
    ordered.push(entry.el);
  }
  for (const id of card.earlierEntries.keys()) if (!kept.has(id)) card.earlierEntries.delete(id);
  const current = Array.from(card.earlierList.children);
  if (current.length !== ordered.length || current.some((el, i) => el !== ordered[i])) card.earlierList.replaceChildren(...ordered);
  card.earlier.hidden = ordered.length === 0;
}

/**
 * The first usable of `preferred`, Cancel, Export; the set's heading when none is.
 * @param {Card} card
 * @param {HTMLElement} preferred
 * @returns {HTMLElement}
 */
export function focusTarget(card, preferred) {
  /** @param {HTMLElement} b */
  const usable = (b) => b.isConnected && !b.hidden && !(b instanceof HTMLButtonElement && b.disabled);
  const target = [preferred, card.cancel, card.export].find(usable);
  if (target) return target;
  card.name.setAttribute("tabindex", "-1");
  return card.name;
}
