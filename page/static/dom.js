// Tiny DOM helpers. Every text goes in through textContent / text nodes, never innerHTML:
// names and messages come from Zooniverse and the API and are not trusted.

/**
 * h("button", {class: "primary", type: "button", onclick: fn}, "Export")
 * Attributes: `class`, `text` (textContent), `on<event>` (listener), booleans (true: present,
 * false/null/undefined: absent), anything else with setAttribute. Never `style` (CSP).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "style") throw new Error("inline styles are blocked by the page's CSP: use a class");
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Set textContent only when it changes (keeps screen readers and selections calm). */
export function setText(el, text) {
  const value = text ?? "";
  if (el.textContent !== value) el.textContent = value;
}

/** An http(s) URL from untrusted input, or null (never a javascript: or data: link). */
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

export function formatDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : dateFormat.format(date);
}

export function formatTime(date) {
  return timeFormat.format(date);
}

export function formatCount(n) {
  return typeof n === "number" && Number.isFinite(n) ? n.toLocaleString() : "?";
}
