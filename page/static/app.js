// @ts-check
// The export page: sign in with Zooniverse, your projects, a project's subject sets.
// Screens: sign-in (no valid token), projects (/), project (/subject-assistant/{id}/).
// Navigation between screens uses the History API; every address also loads on its own.
import * as api from "./api.js";
import * as auth from "./auth.js";
import {announce} from "./announce.js";
import {fill, h} from "./dom.js";
import {ProjectScreen} from "./project.js";
import {APP_NAME} from "./watch.js";

/** @import {Projects} from "./types.js" */
/** @import {ApiError} from "./api.js" */
/** @typedef {{name: "projects"} | {name: "project", projectId: string} | {name: "unknown"}} Route */

const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const account = /** @type {HTMLElement} */ (document.getElementById("account"));

/** @type {{dispose(): void} | null} the current screen */
let screen = null;
/** @type {{kind: "error" | "warning" | "info", text: string} | null} shown once, on the next screen */
let notice = null;
/** @type {Projects | null} GET /api/projects' body for this sign-in */
let projectsCache = null;

/**
 * @param {string} pathname
 * @returns {Route}
 */
function route(pathname) {
  if (pathname === "/" || pathname === "") return {name: "projects"};
  const match = /^\/subject-assistant\/(\d{1,19})\/?$/.exec(pathname);
  if (match) return {name: "project", projectId: match[1].replace(/^0+(?=\d)/, "")};
  return {name: "unknown"};
}

function configured() {
  const url = auth.panoptesUrl();
  return /^https?:\/\//.test(url) && auth.clientId() && !auth.clientId().includes("{{");
}

function takeNotice() {
  if (!notice) return null;
  const {kind, text} = notice;
  notice = null;
  return h("div", {class: `notice notice-${kind}`, role: kind === "info" ? "status" : "alert"}, h("p", {text}));
}

/** @param {string} text */
function setTitle(text) {
  document.title = text ? `${text} · ${APP_NAME}` : APP_NAME;
}

function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

// -- header: who is signed in ---------------------------------------------------------------
function renderAccount() {
  if (!auth.signedIn()) {
    account.replaceChildren();
    return;
  }
  const user = auth.user();
  const who = user ? user.display_name && user.display_name !== user.login ? `${user.display_name} (${user.login})` : user.login : null;
  fill(account,
    h("p", {class: "who"}, who ? ["Signed in as ", h("strong", {text: who})] : "Signed in"),
    h("button", {type: "button", class: "btn secondary small", text: "Sign out", onclick: signOut}));
}

function signOut() {
  auth.signOut();
  projectsCache = null;
  notice = {kind: "info", text: "You are signed out. Your Zooniverse session on zooniverse.org is not affected."};
  render({focus: true});
  announce("Signed out.");
}

auth.onExpired((message) => {
  projectsCache = null;
  notice = {kind: "warning", text: message};
  render({focus: true});
  announce(message);
});

// -- screens ---------------------------------------------------------------------------------
/** @returns {null} */
function signInScreen() {
  const where = route(window.location.pathname);
  setTitle("Sign in");
  const button = h("button", {type: "button", class: "btn primary large", text: "Sign in with Zooniverse",
    onclick: () => auth.beginSignIn(window.location.pathname)});
  if (!configured()) button.disabled = true;
  fill(main,
    h("h1", {text: "Sign in"}),
    takeNotice(),
    !configured() && h("div", {class: "notice notice-error", role: "alert"},
      h("p", {text: "This page is not configured for signing in to Zooniverse. Please tell the operators."})),
    h("p", {class: "lede"},
      "Sign in with your Zooniverse account to export subject sets to the ML service and follow the results in the ML Subject Assistant. ",
      "Only a project's owners and collaborators can export its subject sets."),
    where.name === "project" && h("p", {text: `After signing in you come back to project ${where.projectId}.`}),
    h("p", {}, button),
    h("p", {class: "fine-print", text: "Your Zooniverse access token stays in this browser tab and is forgotten when you sign out or close the tab."}));
  return null;
}

/** @returns {Promise<Projects>} */
async function loadProjects() {
  if (projectsCache) return projectsCache;
  const {body} = await api.listProjects();
  projectsCache = body;
  if (body.user) auth.rememberUser(body.user);
  renderAccount();
  return body;
}

function projectsScreen() {
  setTitle("Your projects");
  const status = h("div", {class: "projects-area", "aria-busy": "true"}, h("p", {class: "loading", text: "Loading your projects…"}));
  // The introduction only where there is something to open (not on the "no access" answer).
  const lede = h("p", {class: "lede", hidden: true,
    text: "The Zooniverse projects on which you are an owner or collaborator. Open one to export its subject sets to the ML service."});
  fill(main,
    h("h1", {tabindex: "-1", text: "Your projects"}),
    takeNotice(),
    lede,
    status);
  let disposed = false;
  projectsCache = null; // this screen always shows fresh roles
  loadProjects().then((body) => {
    if (disposed) return;
    const projects = Array.isArray(body.projects) ? body.projects : [];
    status.removeAttribute("aria-busy");
    if (!projects.length) {
      fill(status, h("div", {class: "empty"},
        h("p", {}, h("strong", {text: "You are not an owner or collaborator of any project"}), ", so there is no subject set you can export."),
        h("p", {text: "Ask a project's owner to add you as a collaborator in the Project Builder, then sign in again. Other roles (tester, moderator, scientist…) cannot export."})));
      return;
    }
    lede.hidden = false;
    fill(status, h("ul", {class: "projects", "aria-label": "Your projects"}, projects.map((p) => h("li", {},
      h("a", {href: `/subject-assistant/${encodeURIComponent(p.id)}/`, "data-nav": true, text: p.display_name || `Project ${p.id}`}),
      h("span", {class: "project-meta", text: `Project ${p.id}${Array.isArray(p.roles) && p.roles.length ? ` · ${p.roles.join(", ")}` : ""}`})))));
  }).catch((/** @type {ApiError} */ error) => {
    if (disposed || error.status === 401) return;
    status.removeAttribute("aria-busy");
    fill(status, h("div", {class: "notice notice-error", role: "alert"}, h("p", {text: error.message}),
      h("p", {}, h("button", {type: "button", class: "btn secondary", text: "Try again", onclick: () => render({focus: true})}))));
  });
  return {dispose: () => { disposed = true; }};
}

/** @param {string} projectId */
function projectScreen(projectId) {
  const projectName = loadProjects()
    .then((body) => (body.projects || []).find((p) => String(p.id) === projectId)?.display_name || null)
    .catch(() => null);
  return new ProjectScreen(main, projectId, {projectName, notice: takeNotice(), userId: () => auth.user()?.id});
}

function unknownScreen() {
  setTitle("Page not found");
  fill(main,
    h("h1", {tabindex: "-1", text: "Page not found"}),
    h("p", {}, "There is no page at this address. ", h("a", {href: "/", "data-nav": true, text: "Go to your projects"}), "."));
  return null;
}

/** @param {{focus?: boolean}} [options] */
function render({focus = false} = {}) {
  screen?.dispose();
  screen = null;
  renderAccount();
  if (!auth.signedIn()) {
    signInScreen();
  } else {
    const where = route(window.location.pathname);
    if (where.name === "projects") screen = projectsScreen();
    else if (where.name === "project") screen = projectScreen(where.projectId);
    else screen = unknownScreen();
  }
  if (focus) focusHeading();
}

// -- navigation ------------------------------------------------------------------------------
/** @param {string} path */
function navigate(path) {
  if (path !== window.location.pathname) window.history.pushState(null, "", path);
  render({focus: true});
}

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
  if (!(link instanceof HTMLAnchorElement)) return;
  if (link.target || link.hasAttribute("download")) return;
  const url = new URL(link.href, window.location.href);
  if (url.origin !== window.location.origin || route(url.pathname).name === "unknown") return;
  event.preventDefault();
  navigate(url.pathname);
});

window.addEventListener("popstate", () => render({focus: true}));

// -- start -----------------------------------------------------------------------------------
function start() {
  const result = auth.completeSignIn(); // first: takes the token out of the address bar
  if (result.outcome === "refused" || result.outcome === "denied") {
    notice = {kind: "error", text: result.message ?? "Sign-in refused."};
  }
  auth.restoreSession(); // a refused reply leaves a sign-in already in place as it was
  render({focus: result.outcome !== "none"});
  if (result.outcome === "signed-in") announce("Signed in with Zooniverse.");
}

start();
