// @ts-check
// Knowing when an export is done without watching the page: the tab's title carries the state
// of what is active ("Running · Camera A - March"), and, only after the person turns them on
// with the control this module renders, browser notifications tell them when an export they
// started completes or fails while the page is open. The choice lasts as long as the page.
import {announce} from "./announce.js";
import {fill, h} from "./dom.js";
import {exportNoun, isActive, setName, titleWord} from "./status.js";

/** @import {Export, SubjectSet} from "./types.js" */

export const APP_NAME = "Subject Assistant export";

/**
 * The tab's title for a project screen.
 * @param {string} projectName
 * @param {SubjectSet[]} sets
 * @param {{set: SubjectSet, exp: Export} | null} lastEnded an export that ended while the page watched it
 * @returns {string}
 */
export function projectTitle(projectName, sets, lastEnded) {
  const active = sets.filter((s) => isActive(s.latest_export));
  let state = "";
  if (active.length === 1) {
    state = `${titleWord(/** @type {Export} */ (active[0].latest_export))} · ${setName(active[0])}`;
  } else if (active.length > 1) {
    state = `${active.length} exports active`;
  } else if (lastEnded) {
    state = `${titleWord(lastEnded.exp)} · ${setName(lastEnded.set)}`;
  }
  return [state, projectName, APP_NAME].filter(Boolean).join(" · ");
}

let enabled = false;

function supported() {
  return typeof window.Notification === "function";
}

/**
 * The control that turns notifications on or off, kept up to date; null where the browser has
 * no notifications.
 * @returns {HTMLElement | null}
 */
export function notificationControl() {
  if (!supported()) return null;
  const area = h("div", {class: "notify"});
  const render = () => {
    if (enabled) {
      fill(area,
        h("p", {text: "Notifications are on: this tab tells you when an export you started completes or fails."}),
        h("button", {type: "button", class: "btn secondary small", text: "Turn notifications off",
          onclick: () => {
            enabled = false;
            render();
            announce("Notifications are off.");
            focusButton();
          }}));
    } else if (Notification.permission === "denied") {
      fill(area, h("p", {text: "Your browser blocks notifications from this page. To be told when an export finishes, allow them in the browser's site settings, then reload."}));
    } else {
      fill(area, h("button", {type: "button", class: "btn secondary small", text: "Notify me when my exports finish", onclick: turnOn}));
    }
  };
  const focusButton = () => area.querySelector("button")?.focus();
  const turnOn = async () => {
    // Asked only now, because the person clicked for it.
    const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    enabled = permission === "granted";
    render();
    announce(enabled ? "Notifications are on." : "Notifications were not allowed.");
    focusButton();
  };
  render();
  return area;
}

/**
 * Tell the person, when they asked for it, that an export they started has ended.
 * @param {string} projectName
 * @param {SubjectSet} set
 * @param {Export} exp
 * @param {string | undefined} userId
 */
export function notifyEnded(projectName, set, exp, userId) {
  if (!enabled || !supported() || Notification.permission !== "granted") return;
  if (!userId || exp.requested_by !== userId) return;
  if (exp.status !== "completed" && exp.status !== "failed") return;
  const body = exp.status === "completed"
    ? `${projectName}: the results are ready in the Subject Assistant.`
    : `${projectName}: ${exp.error?.message || "the export did not finish."}`;
  try {
    const note = new Notification(`${exportNoun(exp)} ${exp.status}: ${setName(set)}`, {body, tag: exp.id});
    note.onclick = () => window.focus();
  } catch {
    /* a browser that lists Notification but refuses it here (some mobile ones): the title still tells */
  }
}
