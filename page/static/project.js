// The project screen (/subject-assistant/{project_id}/, Hamlet's Camera Traps page): every
// subject set with its latest export, Export and Cancel, and live updates while anything is
// active. The DOM is built once per subject set and then updated in place, so focus, scroll
// position and layout stay put while statuses change.
import * as api from "./api.js";
import {announce} from "./announce.js";
import {fill, formatCount, formatDate, formatTime, h, safeHttpUrl, setText} from "./dom.js";
import {isActive, statusDetail, statusLabel, statusWord, summaryRows} from "./status.js";

const FAST_POLL_MS = 3000; // while something changes
const SLOW_POLL_MS = 10000; // after a minute without any change (ML jobs take an hour or more)
const SLOW_AFTER_POLLS = 20;
const RETRY_MS = 5000; // after a failed refresh that is worth retrying
const RESULTS_LINK = "View the results on the Subject Assistant";

/** How a subject set is named to people: its display name, or its id when it has none. */
function setName(set, id = set?.id) {
  return set?.display_name ?? `subject set ${id}`;
}

function stateKey(exp) {
  return exp ? `${exp.id}:${exp.status}` : "";
}

function progressKey(sets) {
  return JSON.stringify(sets.map((s) => {
    const e = s.latest_export;
    return e ? [s.id, e.id, e.status, e.progress?.subjects_done, e.ml_status, e.updated_at] : [s.id];
  }));
}

export class ProjectScreen {
  constructor(main, projectId, context) {
    this.main = main;
    this.projectId = projectId;
    this.context = context; // {projectName: Promise<string|null>, notice: Node|null}
    this.cards = new Map();
    this.previous = null; // set id -> stateKey of its latest export, after the first load
    this.sets = [];
    this.timer = null;
    this.generation = 0;
    this.disposed = false;
    this.unchanged = 0;
    this.lastProgress = "";
    this.waitingForVisible = false;
    this.onVisibility = () => {
      if (!document.hidden && this.waitingForVisible) {
        this.waitingForVisible = false;
        this.load();
      }
    };
    document.addEventListener("visibilitychange", this.onVisibility);
    this.build();
    this.load();
  }

  dispose() {
    this.disposed = true;
    clearTimeout(this.timer);
    document.removeEventListener("visibilitychange", this.onVisibility);
    if (this.dialog.open) this.dialog.close();
  }

  // -- structure -------------------------------------------------------------------------
  build() {
    this.title = h("h1", {tabindex: "-1", text: `Project ${this.projectId}`});
    this.context.projectName.then((name) => {
      if (name && !this.disposed) {
        setText(this.title, name);
        document.title = `${name} · Subject Assistant export`;
      }
    });
    this.errorBox = h("div", {class: "notice notice-error", role: "alert", hidden: true});
    this.loadingNote = h("p", {class: "loading", text: "Loading the subject sets…"});
    this.refreshNote = h("p", {class: "refresh-note"});
    this.emptyNote = h("p", {class: "empty", hidden: true,
      text: "This project has no subject sets yet. Add one in the Zooniverse Project Builder, then come back."});
    this.list = h("ul", {class: "sets", "aria-label": "Subject sets", hidden: true});
    this.buildDialog();
    fill(this.main,
      h("nav", {class: "breadcrumb", "aria-label": "Breadcrumb"}, h("a", {href: "/", "data-nav": true, text: "Your projects"})),
      this.title,
      h("p", {class: "project-id", text: `Zooniverse project ${this.projectId}`}),
      this.context.notice,
      h("p", {class: "lede"},
        "Export a subject set to send its images to the ML service (MegaDetector). As soon as the ML service has a task for it, ",
        "a link takes you to the ML Subject Assistant, where you review the results and retire or move the empty images. ",
        "Results may take an hour or more."),
      this.errorBox,
      this.refreshNote,
      this.loadingNote,
      this.emptyNote,
      this.list,
      this.dialog);
  }

  buildDialog() {
    this.confirmText = h("p", {id: "confirm-cancel-text"});
    this.keepButton = h("button", {type: "button", class: "btn secondary", autofocus: true, text: "No, keep it",
      onclick: () => this.dialog.close()});
    this.confirmButton = h("button", {type: "button", class: "btn danger", text: "Yes, cancel the export",
      onclick: () => this.confirmCancel()});
    this.dialog = h("dialog", {class: "confirm", "aria-labelledby": "confirm-cancel-title", "aria-describedby": "confirm-cancel-text"},
      h("h2", {id: "confirm-cancel-title", text: "Cancel this export?"}),
      this.confirmText,
      h("div", {class: "dialog-actions"}, this.keepButton, this.confirmButton));
    // Closed without confirming (Escape, "No, keep it"): focus goes back to that Cancel button.
    // The close event comes a task later: by then the dialog may be open again for another try.
    this.dialog.addEventListener("close", () => {
      if (this.dialog.open) return;
      const card = this.cancelling;
      this.cancelling = null;
      if (card) this.refocus(card, card.cancel);
    });
  }

  createCard(set) {
    const base = `set-${set.id}`;
    const card = {id: set.id};
    card.name = h("h2", {id: `${base}-name`, class: "set-name"});
    card.meta = h("p", {class: "set-meta"});
    card.badge = h("span", {class: "badge"});
    card.when = h("span", {class: "state-when"});
    card.progress = h("progress", {class: "progress", max: "1", value: "0", hidden: true});
    card.detail = h("p", {class: "state-detail"});
    card.link = h("a", {target: "_blank", rel: "noopener noreferrer", class: "results-link"},
      RESULTS_LINK, h("span", {class: "visually-hidden", text: " (opens in a new tab)"}));
    card.taskId = h("code", {class: "task-id"});
    card.results = h("p", {class: "results", hidden: true}, card.link, " ", h("span", {class: "task"}, "ML task ID: ", card.taskId));
    card.summary = h("dl", {class: "summary", hidden: true});
    card.summaryNote = h("p", {class: "summary-note", hidden: true});
    card.earlierLink = h("a", {target: "_blank", rel: "noopener noreferrer", class: "results-link"},
      RESULTS_LINK, h("span", {class: "visually-hidden", text: " (opens in a new tab)"}));
    card.earlierWhen = h("span");
    card.earlierTask = h("code", {class: "task-id"});
    card.earlier = h("p", {class: "earlier", hidden: true},
      h("span", {class: "earlier-label"}, "Last completed export", card.earlierWhen, ": "),
      card.earlierLink, " ", h("span", {class: "task"}, "ML task ID: ", card.earlierTask));
    card.reason = h("p", {id: `${base}-reason`, class: "reason"});
    card.error = h("p", {class: "set-error", role: "alert"});
    card.export = h("button", {type: "button", class: "btn primary", "aria-describedby": `${base}-name ${base}-reason`,
      text: "Export", onclick: () => this.startExport(card)});
    card.cancel = h("button", {type: "button", class: "btn danger invisible", "aria-describedby": `${base}-name`,
      text: "Cancel export", onclick: () => this.askCancel(card)});
    card.state = h("div", {class: "set-state"},
      h("p", {class: "state-line"}, card.badge, " ", card.when),
      card.progress, card.detail, card.results, card.summary, card.summaryNote, card.earlier);
    card.el = h("li", {class: "set", "data-set-id": set.id},
      h("div", {class: "set-head"}, card.name, card.meta),
      card.state,
      h("div", {class: "set-actions"}, h("div", {class: "buttons"}, card.export, card.cancel), card.reason, card.error));
    return card;
  }

  // -- data --------------------------------------------------------------------------------
  async load() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.disposed) return;
    const generation = ++this.generation;
    let body;
    try {
      ({body} = await api.listExports(this.projectId));
    } catch (error) {
      if (this.disposed || generation !== this.generation || error.status === 401) return;
      this.showError(error.message);
      if (error.transient) this.timer = setTimeout(() => this.poll(), RETRY_MS);
      return;
    }
    if (this.disposed || generation !== this.generation) return;
    this.hideError();
    const sets = Array.isArray(body.subject_sets) ? body.subject_sets : [];
    this.render(sets);
    this.schedule();
  }

  poll() {
    if (this.disposed) return;
    if (document.hidden) {
      this.waitingForVisible = true; // nobody is looking: refresh when the tab is seen again
      return;
    }
    this.load();
  }

  schedule() {
    const active = this.sets.some((s) => isActive(s.latest_export));
    const checked = `Last checked at ${formatTime(new Date())}.`;
    if (!active) {
      setText(this.refreshNote, checked);
      return;
    }
    setText(this.refreshNote, `${checked} This page updates itself every few seconds while an export is active.`);
    const wait = this.unchanged >= SLOW_AFTER_POLLS ? SLOW_POLL_MS : FAST_POLL_MS;
    this.timer = setTimeout(() => this.poll(), wait);
  }

  showError(message) {
    this.loadingNote.hidden = true;
    if (this.previous) {
      // A refresh failed: the listing below stays, as it was last seen.
      fill(this.errorBox, h("p", {text: `The list below could not be refreshed. ${message}`}));
    } else {
      // Nothing to show at all (403, 404, 400): the API's message and a way back.
      fill(this.errorBox, h("p", {text: message}), h("p", {}, h("a", {href: "/", "data-nav": true, text: "Back to your projects"})));
    }
    this.errorBox.hidden = false;
  }

  hideError() {
    this.errorBox.hidden = true;
    this.errorBox.replaceChildren();
  }

  render(sets) {
    this.sets = sets;
    this.loadingNote.hidden = true;
    this.emptyNote.hidden = sets.length > 0;
    this.list.hidden = sets.length === 0;
    const progress = progressKey(sets);
    this.unchanged = progress === this.lastProgress ? this.unchanged + 1 : 0;
    this.lastProgress = progress;

    const seen = new Set();
    const ordered = [];
    for (const set of sets) {
      const id = String(set.id);
      seen.add(id);
      let card = this.cards.get(id);
      if (!card) {
        card = this.createCard(set);
        this.cards.set(id, card);
      }
      this.updateCard(card, set);
      ordered.push(card.el);
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.el.remove();
        this.cards.delete(id);
      }
    }
    // Move nodes only when the order changed (moving a node would take focus away from it).
    const current = Array.from(this.list.children);
    if (current.length !== ordered.length || current.some((el, i) => el !== ordered[i])) this.list.replaceChildren(...ordered);

    // Tell screen-reader users what changed since the last look.
    const changes = [];
    for (const set of sets) {
      const exp = set.latest_export;
      const key = stateKey(exp);
      if (this.previous && exp && this.previous.get(String(set.id)) !== key) {
        let words = `Export of ${setName(set)}: ${statusWord(exp)}`;
        if (exp.status === "failed" && exp.error?.message) words += `. ${exp.error.message}`;
        changes.push(words);
      }
    }
    this.previous = new Map(sets.map((s) => [String(s.id), stateKey(s.latest_export)]));
    if (changes.length) announce(changes.join(". "));
  }

  updateCard(card, set) {
    const focused = document.activeElement;
    card.set = set;
    const name = set.display_name ?? `Subject set ${set.id}`;
    setText(card.name, name);
    const subjects = typeof set.subjects_count === "number" ? `${formatCount(set.subjects_count)} subject${set.subjects_count === 1 ? "" : "s"}` : "subject count unknown";
    setText(card.meta, `Subject set ${set.id} · ${subjects}`);

    const exp = set.latest_export;
    const completed = set.latest_completed_export;
    card.el.dataset.status = exp ? exp.status : "none";
    card.badge.className = `badge badge-${exp ? exp.status : "none"}`;
    if (!exp) {
      setText(card.badge, "Not exported yet");
      setText(card.when, "");
      setText(card.detail, "Press Export to send this set's images to the ML service.");
    } else {
      setText(card.badge, statusLabel(exp));
      const at = exp.status === "queued" || !exp.updated_at ? exp.created_at : exp.updated_at;
      const verb = isActive(exp) ? "Started" : "Finished";
      setText(card.when, isActive(exp) ? `${verb} ${formatDate(exp.created_at)}` : `${verb} ${formatDate(at)}`);
      setText(card.detail, statusDetail(exp));
    }

    // Progress bar while the worker reads Panoptes.
    const building = exp?.status === "building";
    card.progress.hidden = !building;
    if (building) {
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

    // The link to the Subject Assistant as soon as there is an ML task id. A cancelled task keeps
    // it (the ML service still completes it with the part it had done); a failed one keeps only
    // its id, for support: there are no results to open.
    const failedTask = exp?.status === "failed";
    const link = exp && exp.ml_task_id && !failedTask ? safeHttpUrl(exp.subject_assistant_url) : null;
    card.results.hidden = !(exp && exp.ml_task_id);
    if (exp && exp.ml_task_id) {
      if (link) card.link.href = link;
      else card.link.removeAttribute("href");
      card.link.hidden = !link;
      setText(card.taskId, exp.ml_task_id);
    }

    // Results summary of a completed export.
    const summary = exp?.status === "completed" ? summaryRows(exp) : null;
    card.summary.hidden = !summary?.rows;
    card.summaryNote.hidden = !summary?.unavailable;
    if (summary?.rows) {
      const key = JSON.stringify(summary.rows);
      if (card.summary.dataset.key !== key) {
        card.summary.dataset.key = key;
        fill(card.summary, summary.rows.map(([label, value]) => h("div", {class: "summary-item"}, h("dt", {text: label}), h("dd", {text: value}))));
      }
    }
    if (summary?.unavailable) setText(card.summaryNote, summary.unavailable);

    // The last completed export stays reachable when a newer one is running, failed or cancelled.
    const earlierLink = completed && (!exp || completed.id !== exp.id) && completed.ml_task_id ? safeHttpUrl(completed.subject_assistant_url) : null;
    card.earlier.hidden = !earlierLink;
    if (earlierLink) {
      card.earlierLink.href = earlierLink;
      setText(card.earlierWhen, ` (${formatDate(completed.updated_at)})`);
      setText(card.earlierTask, completed.ml_task_id);
    }

    // Buttons: Export unless one is active (then Cancel).
    const active = isActive(exp);
    card.export.disabled = active || Boolean(card.starting);
    card.cancel.classList.toggle("invisible", !active);
    card.cancel.disabled = !active || Boolean(card.cancelInFlight);
    setText(card.reason, card.starting
      ? "Starting the export…"
      : card.cancelInFlight
        ? "Cancelling…"
        : active
          ? "Unavailable while this set's export is active."
          : "");
    // A button that just became unusable hands keyboard focus to its neighbour.
    if (focused === card.export && card.export.disabled) this.refocus(card, card.cancel);
    if (focused === card.cancel && !active) this.refocus(card, card.export);
  }

  refocus(card, preferred) {
    const usable = (b) => b && !b.disabled && !b.classList.contains("invisible") && b.isConnected;
    const target = [preferred, card.cancel, card.export].find(usable);
    if (target) {
      target.focus();
    } else {
      card.name.setAttribute("tabindex", "-1");
      card.name.focus();
    }
  }

  // -- actions -----------------------------------------------------------------------------
  async startExport(card) {
    if (card.starting || isActive(card.set?.latest_export)) return;
    const name = setName(card.set, card.id);
    card.starting = true;
    setText(card.error, "");
    this.updateCard(card, card.set);
    try {
      const {status, body} = await api.startExport(this.projectId, card.id);
      card.starting = false;
      if (this.disposed) return;
      this.showAnswer(card, body);
      announce(status === 202 ? `Export of ${name}: ${statusWord(body)}` : `Export of ${name} is already in progress: ${statusWord(body)}`);
      this.refocus(card, card.cancel);
      this.unchanged = 0;
      this.load();
    } catch (error) {
      card.starting = false;
      if (this.disposed || error.status === 401) return;
      this.updateCard(card, card.set);
      setText(card.error, error.message);
      this.refocus(card, card.export);
      if (error.status === 409 || error.transient) this.load();
    }
  }

  askCancel(card) {
    const exp = card.set?.latest_export;
    if (!isActive(exp)) return;
    const name = setName(card.set, card.id);
    setText(this.confirmText, exp.ml_task_id
      ? `The export of “${name}” will stop: the ML service is asked to cancel task ${exp.ml_task_id}; it may still show results for the part of the images it had done.`
      : `The export of “${name}” will stop before it reaches the ML service.`);
    this.cancelling = card;
    if (!this.dialog.open) this.dialog.showModal();
    this.keepButton.focus();
  }

  async confirmCancel() {
    const card = this.cancelling;
    this.cancelling = null; // before close(): its close event must not move focus
    this.dialog.close();
    if (!card) return;
    const exp = card.set?.latest_export;
    const name = setName(card.set, card.id);
    if (!isActive(exp)) return;
    card.cancelInFlight = true;
    setText(card.error, "");
    this.updateCard(card, card.set);
    try {
      const {body} = await api.cancelExport(exp.id);
      card.cancelInFlight = false;
      if (this.disposed) return;
      this.showAnswer(card, body);
      announce(`Export of ${name}: ${statusWord(body)}`);
      this.refocus(card, card.export);
      this.load();
    } catch (error) {
      card.cancelInFlight = false;
      if (this.disposed || error.status === 401) return;
      this.updateCard(card, card.set);
      setText(card.error, error.message);
      announce(`Export of ${name} was not cancelled. ${error.message}`);
      this.refocus(card, card.cancel);
      this.load();
    }
  }

  /** Show the export an Export or Cancel answered with, without waiting for the next refresh
   * (and without announcing it a second time when the refresh sees it). */
  showAnswer(card, exp) {
    const set = {...card.set, latest_export: exp};
    this.replaceSet(set);
    this.updateCard(card, set);
    this.previous?.set(String(card.id), stateKey(exp));
  }

  replaceSet(set) {
    this.sets = this.sets.map((s) => (String(s.id) === String(set.id) ? set : s));
    const card = this.cards.get(String(set.id));
    if (card) card.set = set;
  }
}
