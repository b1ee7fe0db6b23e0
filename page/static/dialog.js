// @ts-check
// One modal confirmation (<dialog>): a question, the safe choice first and focused, and an
// answer as a promise. Escape or the safe button answers false.
import {h, setText} from "./dom.js";

/** @typedef {{title: string, text: string, keep: string, confirm: string, danger?: boolean}} Question */

export class ConfirmDialog {
  constructor() {
    this.title = h("h2", {id: "confirm-title"});
    this.text = h("p", {id: "confirm-text"});
    this.keepButton = h("button", {type: "button", class: "btn secondary", autofocus: true, onclick: () => this.answer(false)});
    this.confirmButton = h("button", {type: "button", class: "btn", onclick: () => this.answer(true)});
    this.el = h("dialog", {class: "confirm", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text"},
      this.title, this.text, h("div", {class: "dialog-actions"}, this.keepButton, this.confirmButton));
    /** @type {((answer: boolean) => void) | null} */
    this.resolve = null;
    // Escape closes the dialog by itself. The close event comes a task later: by then the
    // dialog may be open again for another question, which it must not answer.
    this.el.addEventListener("close", () => {
      if (!this.el.open) this.settle(false);
    });
  }

  get open() {
    return this.el.open;
  }

  /**
   * Ask, and wait for the answer (an earlier question still open is answered false).
   * @param {Question} question
   * @returns {Promise<boolean>}
   */
  ask(question) {
    this.settle(false);
    this.update(question.text);
    setText(this.title, question.title);
    setText(this.keepButton, question.keep);
    setText(this.confirmButton, question.confirm);
    this.confirmButton.className = `btn ${question.danger ? "danger" : "primary"}`;
    if (!this.el.open) this.el.showModal();
    this.keepButton.focus();
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  /**
   * New words for the open question (the state it is about changed meanwhile).
   * @param {string} text
   */
  update(text) {
    setText(this.text, text);
  }

  /** Close without an answer from the person (the question no longer applies). */
  dismiss() {
    this.answer(false);
  }

  /** @param {boolean} value */
  answer(value) {
    const resolve = this.resolve;
    this.resolve = null;
    if (this.el.open) this.el.close();
    resolve?.(value);
  }

  /** @param {boolean} value */
  settle(value) {
    const resolve = this.resolve;
    this.resolve = null;
    resolve?.(value);
  }
}
