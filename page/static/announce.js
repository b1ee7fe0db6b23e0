// @ts-check
// One polite live region for the whole page (#announcer): state changes, results of actions.
let last = "";
/** @type {ReturnType<typeof setTimeout> | undefined} */
let pending;

/** @param {string} text */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region || !text) return;
  clearTimeout(pending);
  if (text === last) {
    // The same words again: empty the region first so screen readers speak them again.
    region.textContent = "";
    pending = setTimeout(() => {
      region.textContent = text;
    }, 100);
  } else {
    region.textContent = text;
  }
  last = text;
}
