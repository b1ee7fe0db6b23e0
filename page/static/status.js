// What an Export's state means, in words a person understands.

export const ACTIVE = new Set(["queued", "building", "submitted", "running"]);

export function isActive(exp) {
  return Boolean(exp) && ACTIVE.has(exp.status);
}

function count(n) {
  return typeof n === "number" && Number.isFinite(n) ? n.toLocaleString() : null;
}

/** The headline: "Queued", "Reading subjects from Zooniverse (10 of 25)", "Completed", … */
export function statusLabel(exp) {
  switch (exp.status) {
    case "queued":
      return "Queued";
    case "building": {
      const done = count(exp.progress?.subjects_done) ?? "0";
      const total = count(exp.progress?.subjects_total);
      return total ? `Reading subjects from Zooniverse (${done} of ${total})` : `Reading subjects from Zooniverse (${done} read)`;
    }
    case "submitted":
      return "Sent to the ML service";
    case "running":
      return "ML processing";
    case "completed":
      return "Completed";
    case "failed":
      return "Failed";
    case "cancelled":
      return "Cancelled";
    default:
      return "Unknown state";
  }
}

/** Short words for the live announcement: "Export of Camera A - March: completed". */
export function statusWord(exp) {
  return {
    queued: "queued",
    building: "reading subjects from Zooniverse",
    submitted: "sent to the ML service",
    running: "ML processing",
    completed: "completed",
    failed: "failed",
    cancelled: "cancelled",
  }[exp.status] ?? "state unknown";
}

/** A sentence under the headline: what is happening now and what to expect. */
export function statusDetail(exp) {
  switch (exp.status) {
    case "queued":
      return "Waiting for the export worker; it starts within a minute.";
    case "building":
      return "Listing the set's images for the ML service.";
    case "submitted":
      return "The ML service has the task and is preparing it. Results may take an hour or more.";
    case "running":
      return exp.ml_status === "problem"
        ? "The ML service reported a problem with the task and is retrying it. Results may take an hour or more."
        : "The ML service is looking for animals, people and vehicles. Results may take an hour or more.";
    case "completed":
      return "The ML service has finished.";
    case "failed": {
      const given = exp.error && typeof exp.error.message === "string" ? exp.error.message.trim() : "";
      const message = given ? (/[.!?]$/.test(given) ? given : `${given}.`) : "The export did not finish.";
      return `${message} To try again, press Export.`;
    }
    case "cancelled":
      return exp.ml_task_id
        ? "This export was cancelled. The ML service may still show results for the part of the images it had done. Press Export to start a new one."
        : "This export was cancelled. Press Export to start a new one.";
    default:
      return "";
  }
}

/** The completed export's results summary as [label, value] rows, or a sentence why not. */
export function summaryRows(exp) {
  const summary = exp.results_summary;
  if (!summary || typeof summary !== "object") return null;
  if (summary.available !== true) {
    const reason = typeof summary.reason === "string" && summary.reason ? summary.reason : "no reason was given";
    return {unavailable: `Results summary unavailable: ${reason}`};
  }
  const rows = [["Images sent", count(summary.images_submitted)], ["Images with results", count(summary.images_returned)]];
  const threshold = typeof summary.likely_empty_threshold === "number" ? ` (confidence below ${summary.likely_empty_threshold})` : "";
  rows.push([`Likely empty${threshold}`, count(summary.images_likely_empty)]);
  rows.push(["Failed", count(summary.images_failed)]);
  rows.push(["Missing", count(summary.images_missing)]);
  if (typeof summary.failed_shards === "number" && summary.failed_shards > 0) rows.push(["Failed batches", count(summary.failed_shards)]);
  return {rows: rows.filter(([, value]) => value !== null)};
}
