// @ts-check
// The project screen (/subject-assistant/{project_id}/, Hamlet's Camera Traps page): every
// subject set with its latest export (card.js), Export, Re-run and Cancel with their
// confirmations, and live updates while anything is active.
import * as api from "./api.js";
import {announce} from "./announce.js";
import {createCard, focusTarget, updateCard} from "./card.js";
import {ConfirmDialog} from "./dialog.js";
import {fill, formatTime, h, meta, setText} from "./dom.js";
import {rerunQuestion} from "./rerun.js";
import {ACTIVE, cancelQuestion, exportAgainQuestion, exportNoun, isActive, setName, statusWord} from "./status.js";
import {notificationControl, notifyEnded, projectTitle} from "./watch.js";

/** @import {Card} from "./card.js" */
/** @import {Export, SubjectSet} from "./types.js" */
/** @import {ApiError} from "./api.js" */

/**
 * How often the page refreshes while an export is active, in ms: the page's
 * <meta name="refresh-seconds"> (the PAGE_REFRESH_SECONDS setting), 3 s when it is unreadable.
 * @returns {number}
 */
export function refreshInterval() {
  const seconds = Number.parseFloat(meta("refresh-seconds"));
  return Number.isFinite(seconds) && seconds >= 0.05 && seconds <= 600 ? seconds * 1000 : 3000;
}

const SLOW_AFTER_REFRESHES = 20; // unchanged refreshes in a row before slowing down (ML jobs take an hour or more)
const SLOW_FACTOR = 10 / 3; // 3 s becomes 10 s
const RETRY_FACTOR = 5 / 3; // 3 s becomes 5 s after a failed refresh worth retrying

/**
 * @param {Export | null | undefined} exp
 * @returns {string}
 */
function stateKey(exp) {
  return exp ? `${exp.id}:${exp.status}` : "";
}

/**
 * @param {SubjectSet[]} sets
 * @returns {string}
 */
function progressKey(sets) {
  return JSON.stringify(sets.map((s) => {
    const e = s.latest_export;
    return e ? [s.id, e.id, e.status, e.progress?.subjects_done, e.ml_status, e.updated_at] : [s.id];
  }));
}

/**
 * @param {unknown} error
 * @returns {ApiError}
 */
function apiError(error) {
  return /** @type {ApiError} */ (error);
}

export class ProjectScreen {
  /**
   * @param {HTMLElement} main
   * @param {string} projectId
   * @param {{projectName: Promise<string | null>, notice: Node | null, userId: () => string | undefined}} context
   */
  constructor(main, projectId, context) {
    this.main = main;
    this.projectId = projectId;
    this.context = context;
    this.projectName = `Project ${projectId}`;
    /** @type {Map<string, Card>} */
    this.cards = new Map();
    /** @type {Map<string, string> | null} set id -> stateKey of its latest export, after the first load */
    this.previous = null;
    /** @type {SubjectSet[]} */
    this.sets = [];
    /** @type {{set: SubjectSet, exp: Export} | null} */
    this.lastEnded = null;
    /** @type {Card | null} the card whose cancel question is open */
    this.cancelling = null;
    /** @type {Map<string, Export | null>} earlier exports read on their own (null: not readable) */
    this.known = new Map();
    /** @type {Set<string>} ids of earlier exports being read */
    this.reading = new Set();
    /** @param {string} id */
    this.lookup = (id) => this.known.get(id);
    /** @param {string} id */
    this.reread = (id) => this.rereadExport(id);
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.interval = refreshInterval();
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
    this.dialog = new ConfirmDialog();
    this.title = h("h1", {tabindex: "-1", text: this.projectName});
    this.errorBox = h("div", {class: "notice notice-error", role: "alert", hidden: true});
    this.lede = h("p", {class: "lede", hidden: true},
      "Export a subject set to send its images to the ML service (MegaDetector). Once the ML service is working on it, ",
      "a link takes you to the ML Subject Assistant, where you review the results and retire or move the empty images. ",
      "Results may take an hour or more.");
    this.loadingNote = h("p", {class: "loading", text: "Loading the subject sets…"});
    this.refreshNote = h("p", {class: "refresh-note"});
    this.emptyNote = h("p", {class: "empty", hidden: true,
      text: "This project has no subject sets yet. Add one in the Zooniverse Project Builder, then come back."});
    this.list = h("ul", {class: "sets", "aria-label": "Subject sets", hidden: true});
    this.tools = h("div", {class: "project-tools", hidden: true}, this.refreshNote, notificationControl());
    fill(this.main,
      h("nav", {class: "breadcrumb", "aria-label": "Breadcrumb"}, h("a", {href: "/", "data-nav": true, text: "Your projects"})),
      this.title,
      h("p", {class: "project-id", text: `Zooniverse project ${this.projectId}`}),
      this.context.notice,
      this.lede,
      this.errorBox,
      this.tools,
      this.loadingNote,
      this.emptyNote,
      this.list,
      this.dialog.el);
    this.updateTitle();
    this.context.projectName.then((name) => {
      if (name && !this.disposed) {
        this.projectName = name;
        setText(this.title, name);
        this.updateTitle();
      }
    });
    this.load();
  }

  dispose() {
    this.disposed = true;
    clearTimeout(this.timer);
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.dialog.dismiss();
  }

  updateTitle() {
    document.title = projectTitle(this.projectName, this.sets, this.lastEnded);
  }

  // -- data --------------------------------------------------------------------------------
  async load() {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.disposed) return;
    const generation = ++this.generation;
    let body;
    try {
      ({body} = await api.listExports(this.projectId));
    } catch (caught) {
      const error = apiError(caught);
      if (this.disposed || generation !== this.generation || error.status === 401) return;
      this.showError(error.message);
      if (error.transient) this.timer = setTimeout(() => this.poll(), this.interval * RETRY_FACTOR);
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
    const wait = this.unchanged >= SLOW_AFTER_REFRESHES ? this.interval * SLOW_FACTOR : this.interval;
    this.timer = setTimeout(() => this.poll(), wait);
  }

  /** @param {string} message */
  showError(message) {
    this.loadingNote.hidden = true;
    if (this.previous) {
      // A refresh failed: the listing below stays, as it was last seen.
      fill(this.errorBox, h("p", {text: `The list below could not be refreshed. ${message}`}));
    } else {
      // Nothing to show at all (403, 404, 400): the API's message and a way back, no introduction.
      fill(this.errorBox, h("p", {text: message}), h("p", {}, h("a", {href: "/", "data-nav": true, text: "Back to your projects"})));
    }
    this.errorBox.hidden = false;
  }

  hideError() {
    this.errorBox.hidden = true;
    this.errorBox.replaceChildren();
  }

  /** @param {SubjectSet[]} listed */
  render(listed) {
    const sets = listed.map((set) => this.newest(set));
    this.sets = sets;
    this.loadingNote.hidden = true;
    this.lede.hidden = false;
    this.tools.hidden = false;
    this.emptyNote.hidden = sets.length > 0;
    this.list.hidden = sets.length === 0;
    const progress = progressKey(sets);
    this.unchanged = progress === this.lastProgress ? this.unchanged + 1 : 0;
    this.lastProgress = progress;

    const seen = new Set();
    /** @type {HTMLElement[]} */
    const ordered = [];
    for (const set of sets) {
      const id = String(set.id);
      seen.add(id);
      let card = this.cards.get(id);
      if (!card) {
        card = createCard(set, {
          onExport: (c) => this.exportClicked(c),
          onRerun: (c) => this.rerunClicked(c),
          onCancel: (c) => this.cancelClicked(c),
          reread: this.reread,
        });
        this.cards.set(id, card);
      }
      this.show(card, set);
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

    // Tell screen-reader users (and, when asked, the browser's notifications) what changed.
    /** @type {string[]} */
    const changes = [];
    for (const set of sets) {
      const exp = set.latest_export;
      const before = this.previous?.get(String(set.id));
      if (!this.previous || !exp || before === stateKey(exp)) continue;
      let words = `${exportNoun(exp)} of ${setName(set)}: ${statusWord(exp)}`;
      if (exp.status === "failed" && exp.error?.message) words += `. ${exp.error.message}`;
      changes.push(words);
      const [beforeId, beforeStatus] = (before ?? "").split(":");
      if (beforeId === exp.id && ACTIVE.has(beforeStatus) && !isActive(exp)) {
        // Seen active, now ended: the title and (when asked for) a notification say so.
        this.lastEnded = {set, exp};
        notifyEnded(this.projectName, set, exp, this.context.userId());
      }
    }
    this.previous = new Map(sets.map((s) => [String(s.id), stateKey(s.latest_export)]));
    if (changes.length) announce(changes.join(". "));
    this.updateTitle();
    this.updateCancelQuestion();
  }

  /**
   * @param {Card} card
   * @param {SubjectSet} set
   */
  show(card, set) {
    const next = updateCard(card, set, this.lookup, this.reread);
    if (next) this.refocus(card, next);
    if (card.wanted) this.readEarlier(card.wanted);
  }

  /**
   * Read an earlier export a card names (what a re-run re-ran), then show the cards again. Its
   * results never change once completed; an answer worth retrying is tried at the next refresh.
   * @param {string} id
   */
  async readEarlier(id) {
    if (this.known.has(id) || this.reading.has(id)) return;
    this.reading.add(id);
    try {
      this.known.set(id, (await api.getExport(id)).body);
    } catch (caught) {
      if (!apiError(caught).transient) this.known.set(id, null);
    } finally {
      this.reading.delete(id);
    }
    if (this.disposed || !this.known.has(id)) return;
    for (const card of this.cards.values()) this.show(card, card.set);
  }

  /**
   * An export read again for a new CSV link; kept, when it is an earlier export, so the card
   * shows the new link from now on.
   * @param {string} id
   * @returns {Promise<Export>}
   */
  async rereadExport(id) {
    const {body} = await api.getExport(id);
    if (this.known.has(id)) this.known.set(id, body);
    return body;
  }

  /**
   * @param {Card} card
   * @param {HTMLElement} preferred
   */
  refocus(card, preferred) {
    focusTarget(card, preferred).focus();
  }

  /** The open cancel question follows the export's state while it is open. */
  updateCancelQuestion() {
    const card = this.cancelling;
    if (!card || !this.dialog.open) return;
    const exp = card.set.latest_export;
    if (isActive(exp)) this.dialog.update(cancelQuestion(card.set, exp));
    else this.dialog.dismiss(); // it ended meanwhile: nothing left to cancel
  }

  // -- actions -----------------------------------------------------------------------------
  /** @param {Card} card */
  async exportClicked(card) {
    if (card.starting || isActive(card.set.latest_export)) return;
    const question = exportAgainQuestion(card.set);
    if (question) {
      const yes = await this.dialog.ask({...question, keep: "No, don't export", confirm: "Yes, export again"});
      if (!yes) {
        if (!this.disposed) this.refocus(card, card.export);
        return;
      }
      if (this.disposed || card.starting || isActive(card.set.latest_export)) return;
    }
    await this.startExport(card);
  }

  /** @param {Card} card */
  async startExport(card) {
    const name = setName(card.set, card.id);
    card.starting = true;
    setText(card.exportError, "");
    this.show(card, card.set);
    try {
      const {status, body} = await api.startExport(this.projectId, card.id);
      card.starting = false;
      if (this.disposed) return;
      this.showAnswer(card, body);
      announce(status === 202
        ? `Export of ${name}: ${statusWord(body)}`
        : `${exportNoun(body)} of ${name} is already in progress: ${statusWord(body)}`);
      this.refocus(card, card.cancel);
      this.unchanged = 0;
      this.load();
    } catch (caught) {
      const error = apiError(caught);
      card.starting = false;
      if (this.disposed || error.status === 401) return;
      this.show(card, card.set);
      setText(card.exportError, error.message);
      this.refocus(card, card.export);
      if (error.status === 409 || error.transient) this.load();
    }
  }

  /**
   * Re-run asks first, naming the export whose failed and missing images it sends again.
   * @param {Card} card
   */
  async rerunClicked(card) {
    const target = card.rerunTarget;
    if (!target || card.rerunning || card.starting || isActive(card.set.latest_export)) return;
    const yes = await this.dialog.ask(rerunQuestion(card.set, target));
    if (this.disposed) return;
    if (!yes) {
      this.refocus(card, card.rerun);
      return;
    }
    if (card.rerunning || card.starting || isActive(card.set.latest_export)) return;
    await this.startRerun(card, target);
  }

  /**
   * @param {Card} card
   * @param {Export} target
   */
  async startRerun(card, target) {
    const name = setName(card.set, card.id);
    card.rerunning = true;
    setText(card.rerunError, "");
    setText(card.exportError, "");
    this.show(card, card.set);
    try {
      const {status, body} = await api.rerunExport(target.id);
      card.rerunning = false;
      if (this.disposed) return;
      card.watched = true; // the new export goes on by itself from here: keep its room
      this.showAnswer(card, body);
      announce(status === 202
        ? `Re-run of ${name}: ${statusWord(body)}`
        : `${exportNoun(body)} of ${name} is already in progress: ${statusWord(body)}`);
      this.refocus(card, card.cancel);
      this.unchanged = 0;
      this.load();
    } catch (caught) {
      const error = apiError(caught);
      card.rerunning = false;
      if (this.disposed || error.status === 401) return;
      this.show(card, card.set);
      setText(card.rerunError, error.message);
      announce(`${name} was not re-run. ${error.message}`);
      this.refocus(card, card.rerun);
      if (error.status === 409 || error.transient) this.load();
    }
  }

  /**
   * Cancel asks first, in words for the state the export is in: it is read again before the
   * question (the card may be a refresh behind), and the question follows it while open.
   * @param {Card} card
   */
  async cancelClicked(card) {
    const known = card.set.latest_export;
    if (!isActive(known) || card.checking || card.cancelInFlight) return;
    card.checking = true;
    setText(card.cancelError, "");
    this.show(card, card.set);
    let exp = known;
    try {
      exp = (await api.getExport(known.id)).body;
    } catch (caught) {
      if (apiError(caught).status === 401) return;
      // Not readable now: ask with what is known; the answer to the cancel tells the truth.
    } finally {
      card.checking = false;
    }
    if (this.disposed) return;
    this.applyExport(card, exp);
    if (!isActive(exp)) {
      this.refocus(card, card.export);
      return;
    }
    this.cancelling = card;
    const yes = await this.dialog.ask({
      title: "Cancel this export?",
      text: cancelQuestion(card.set, exp),
      keep: "No, keep it",
      confirm: "Yes, cancel the export",
      danger: true,
    });
    this.cancelling = null;
    if (this.disposed) return;
    if (yes) await this.confirmCancel(card);
    else this.refocus(card, card.cancel);
  }

  /** @param {Card} card */
  async confirmCancel(card) {
    const exp = card.set.latest_export;
    const name = setName(card.set, card.id);
    if (!isActive(exp)) return;
    card.cancelInFlight = true;
    setText(card.cancelError, "");
    this.show(card, card.set);
    try {
      const {body} = await api.cancelExport(exp.id);
      card.cancelInFlight = false;
      if (this.disposed) return;
      // The person's own click ends it: the card may shrink now without surprising anyone.
      card.watched = isActive(body);
      this.showAnswer(card, body);
      announce(`${exportNoun(body)} of ${name}: ${statusWord(body)}`);
      this.refocus(card, card.export);
      this.load();
    } catch (caught) {
      const error = apiError(caught);
      card.cancelInFlight = false;
      if (this.disposed || error.status === 401) return;
      this.show(card, card.set);
      setText(card.cancelError, error.message);
      announce(`${exportNoun(exp)} of ${name} was not cancelled. ${error.message}`);
      this.refocus(card, card.cancel);
      this.load();
    }
  }

  /**
   * A listing read before an export's own read can arrive after it (a refresh in flight while
   * Cancel reads the export): an export is never shown older than the page has already seen it.
   * @param {SubjectSet} set
   * @returns {SubjectSet}
   */
  newest(set) {
    const known = this.sets.find((s) => String(s.id) === String(set.id))?.latest_export;
    const listed = set.latest_export;
    if (known && listed && known.id === listed.id && known.updated_at > listed.updated_at) return {...set, latest_export: known};
    return set;
  }

  /**
   * Show the export an Export or Cancel answered with, without waiting for the next refresh
   * (and without announcing it a second time when the refresh sees it).
   * @param {Card} card
   * @param {Export} exp
   */
  showAnswer(card, exp) {
    this.replaceExport(card, exp);
    this.previous?.set(card.id, stateKey(exp));
  }

  /**
   * Show an export read on its own (GET /api/exports/{id}) as a refresh would, announcing a change.
   * @param {Card} card
   * @param {Export} exp
   */
  applyExport(card, exp) {
    const before = this.previous?.get(card.id);
    this.replaceExport(card, exp);
    if (before !== undefined && before !== stateKey(exp)) announce(`${exportNoun(exp)} of ${setName(card.set)}: ${statusWord(exp)}`);
    this.previous?.set(card.id, stateKey(exp));
  }

  /**
   * @param {Card} card
   * @param {Export} exp
   */
  replaceExport(card, exp) {
    const set = {...card.set, latest_export: exp};
    this.sets = this.sets.map((s) => (String(s.id) === card.id ? set : s));
    this.show(card, set);
    this.updateTitle();
  }
}
