// @ts-check
// Tiny DOM helpers. Every text goes in through textContent / text nodes, never innerHTML:
// names and messages come from Zooniverse and the API and are not trusted.

/** @typedef {Node | string | number | null | undefined | false} Child */
/** @typedef {Child | Children[]} Children */

/**
 * h("button", {class: "primary", type: "button", onclick: fn}, "Export")
 * Attributes: `class`, `text` (textContent), `on<event>` (listener), booleans (true: present,
 * false/null/undefined: absent), anything else with setAttribute. Never `style` (CSP).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...Children} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "style") throw new Error("inline styles are blocked by the page's CSP: use a class");
    if (name === "class") el.className = String(value);
    else if (name === "text") el.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), /** @type {EventListener} */ (value));
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/**
 * @template {Element} E
 * @param {E} el
 * @param {Children[]} children
 * @returns {E}
 */
export function append(el, children) {
  for (const child of children) {
    if (Array.isArray(child)) append(el, child);
    else if (child !== null && child !== undefined && child !== false) {
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return el;
}

/**
 * Replace an element's children.
 * @template {Element} E
 * @param {E} el
 * @param {...Children} children
 * @returns {E}
 */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * Set textContent only when it changes (keeps screen readers and selections calm).
 * @param {Element} el
 * @param {string | null | undefined} text
 */
export function setText(el, text) {
  const value = text ?? "";
  if (el.textContent !== value) el.textContent = value;
}

/**
 * A <meta name="…"> tag's content, trimmed ("" when there is none).
 * @param {string} name
 * @returns {string}
 */
export function meta(name) {
  const el = document.querySelector(`meta[name="${name}"]`);
  return el instanceof HTMLMetaElement ? el.content.trim() : "";
}

/**
 * An http(s) URL from untrusted input, or null (never a javascript: or data: link).
 * @param {unknown} value
 * @returns {string | null}
 */
export function safeHttpUrl(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, window.location.origin);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

const dateFormat = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "short"});
const timeFormat = new Intl.DateTimeFormat(undefined, {timeStyle: "medium"});

/**
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function formatDate(iso) {
  const date = new Date(iso ?? "");
  return Number.isNaN(date.getTime()) ? "" : dateFormat.format(date);
}

/**
 * @param {Date} date
 * @returns {string}
 */
export function formatTime(date) {
  return timeFormat.format(date);
}

/**
 * A count for people ("1,234"), or null when it is not a number.
 * @param {unknown} n
 * @returns {string | null}
 */
export function count(n) {
  return typeof n === "number" && Number.isFinite(n) ? n.toLocaleString() : null;
}

/**
 * "1 subject", "25 subjects"; null when `n` is not a number.
 * @param {unknown} n
 * @param {string} one
 * @param {string} [many]
 * @returns {string | null}
 */
export function plural(n, one, many = `${one}s`) {
  const text = count(n);
  return text === null ? null : `${text} ${n === 1 ? one : many}`;
}
