"use strict";
// Preloaded into Azurite (`node --require`, devtools/azurite.py) when it runs with
// --disableTelemetry. Azurite's common/Telemetry.js requires "applicationinsights" when it loads,
// telemetry on or off; with it off, the module is never used (every use sits behind
// `enableTelemetry`). Loading it is 2,800 of the 3,800 modules Azurite loads (OpenTelemetry,
// Application Insights), and about 1.3 s of Azurite's 2 s of CPU to start. Here that require
// gets an object that throws on any use instead, so a later Azurite that did use it would fail
// loudly, not skip telemetry quietly.
const Module = require("module");

if (process.argv.includes("--disableTelemetry")) {
  const unused = new Proxy(
    {},
    {
      get(_target, name) {
        throw new Error(`applicationinsights.${String(name)} used with --disableTelemetry`);
      },
    },
  );
  const load = Module._load;
  Module._load = function loadWithoutTelemetry(request, ...rest) {
    return request === "applicationinsights" ? unused : load.call(this, request, ...rest);
  };
}
