// @ts-check
// One subject set's card: its name, its latest export in words, the Subject Assistant link when
// the Subject Assistant can open it, the results summary, and Export / Cancel, each with the
// note that explains it. Built once per set and updated in place, so focus, scroll position and
// layout stay put while the state changes.
import {formatDate, h, plural, setText} from "./dom.js";
import {
  assistantLink, completedLinkText, isActive, linkNote, sentSentence, setName, statusDetail, statusLabel,
} from "./status.js";
import {renderSummary} from "./summary.js";

/** @import {SubjectSet} from "./types.js" */

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
 * @property {HTMLParagraphElement} sent
 * @property {HTMLParagraphElement} results
 * @property {HTMLAnchorElement} link
 * @property {HTMLSpanElement} linkText
 * @property {HTMLSpanElement} task
 * @property {HTMLElement} taskId
 * @property {HTMLParagraphElement} linkNote
 * @property {HTMLDivElement} summary
 * @property {HTMLParagraphElement} earlier
 * @property {HTMLAnchorElement} earlierLink
 * @property {HTMLSpanElement} earlierText
 * @property {HTMLElement} earlierTask
 * @property {HTMLButtonElement} export
 * @property {HTMLParagraphElement} reason
 * @property {HTMLParagraphElement} exportError
 * @property {HTMLButtonElement} cancel
 * @property {HTMLParagraphElement} cancelNote
 * @property {HTMLParagraphElement} cancelError
 * @property {boolean} starting an Export request is on its way
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
 * @param {SubjectSet} set
 * @param {{onExport: (card: Card) => void, onCancel: (card: Card) => void}} actions
 * @returns {Card}
 */
export function createCard(set, actions) {
  const base = `set-${set.id}`;
  const linkText = h("span");
  const taskId = h("code", {class: "task-id"});
  const earlierText = h("span");
  const earlierTask = h("code", {class: "task-id"});
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
    sent: h("p", {class: "sent", hidden: true}),
    results: h("p", {class: "results", hidden: true}),
    link: newTabLink(base, linkText),
    linkText,
    task: h("span", {class: "task"}, "ML task ID: ", taskId),
    taskId,
    linkNote: h("p", {class: "link-note", hidden: true}),
    summary: h("div", {class: "summary-area", hidden: true}),
    earlier: h("p", {class: "earlier", hidden: true}),
    earlierLink: newTabLink(base, earlierText),
    earlierText,
    earlierTask,
    export: h("button", {type: "button", class: "btn primary", "aria-describedby": `${base}-name ${base}-reason`, text: "Export"}),
    reason: h("p", {id: `${base}-reason`, class: "reason"}),
    exportError: h("p", {class: "set-error export-error", role: "alert"}),
    cancel: h("button", {type: "button", class: "btn danger", "aria-describedby": `${base}-name`, text: "Cancel export", hidden: true}),
    cancelNote: h("p", {class: "cancel-note"}),
    cancelError: h("p", {class: "set-error cancel-error", role: "alert"}),
    starting: false,
    checking: false,
    cancelInFlight: false,
    watched: false,
  };
  card.export.addEventListener("click", () => actions.onExport(card));
  card.cancel.addEventListener("click", () => actions.onCancel(card));
  card.results.append(card.link, " ", card.task);
  card.earlier.append(card.earlierLink, " ", h("span", {class: "task"}, "ML task ID: ", earlierTask));
  card.el.append(
    h("div", {class: "set-head"}, card.name, card.meta),
    h("div", {class: "set-state"},
      h("p", {class: "state-line"}, card.badge, " ", card.when),
      card.progress, card.detail, card.sent, card.results, card.linkNote, card.summary, card.earlier),
    h("div", {class: "set-actions"},
      h("div", {class: "action"}, card.export, card.reason, card.exportError),
      h("div", {class: "action"}, card.cancel, card.cancelNote, card.cancelError)));
  return card;
}

/**
 * Show `set` on its card. Returns the button that should take keyboard focus because the one
 * that had it just became unusable (null: focus stays where it is).
 * @param {Card} card
 * @param {SubjectSet} set
 * @returns {HTMLElement | null}
 */
export function updateCard(card, set) {
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

  // Progress bar while the worker reads Panoptes.
  const building = exp?.status === "building";
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

  renderSummary(card.summary, exp);

  // The last completed export stays reachable when a newer one is running, failed or cancelled.
  const completed = set.latest_completed_export;
  const earlier = completed && completed.id !== exp?.id ? assistantLink(completed) : null;
  card.earlier.hidden = !earlier;
  if (completed && earlier) {
    card.earlierLink.href = earlier.url;
    setText(card.earlierText, completedLinkText(completed));
    setText(card.earlierTask, completed.ml_task_id);
  }

  // Export, unless one is active or the set has nothing to export; Cancel while one is active.
  const empty = set.subjects_count === 0;
  card.export.disabled = active || empty || card.starting;
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
  if (focused === card.cancel && !active) return card.export;
  return null;
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
