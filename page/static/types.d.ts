// The API's shapes as the page reads them (exports/openapi.py is the authority). Only for the
// type check (`make lint`): the page imports these in JSDoc comments, the browser never loads
// this file.

export type ExportStatus = "queued" | "building" | "submitted" | "running" | "completed" | "failed" | "cancelled";
export type MlStatus = "created" | "running" | "problem" | "completed" | "failed" | "canceled";

/** `results_summary`: the contract's keys, and the first release's (both may be served while
 * branches merge; every key is optional here so the page copes with either). */
export interface ResultsSummary {
  available?: boolean;
  reason?: string | null;
  model?: string | null;
  // the contract's "Results people can act on"
  images_sent?: number;
  images_scored?: number;
  images_failed?: number;
  images_missing?: number;
  failures?: Record<string, number> | null;
  likely_empty_threshold?: number;
  images_likely_empty?: number;
  subjects_sent?: number;
  subjects_all_likely_empty?: number;
  subjects_incomplete?: number;
  images_unknown?: number;
  csv_reason?: string | null;
  // the first release
  images_submitted?: number;
  images_returned?: number;
  failed_shards?: number | null;
}

export interface Export {
  id: string;
  project_id: string;
  subject_set_id: string;
  status: ExportStatus;
  created_at: string;
  updated_at: string;
  requested_by: string;
  progress: {subjects_done: number | null; subjects_total: number | null} | null;
  manifest: {subjects: number | null; images: number | null; skipped_frames: number | null; blob: string} | null;
  ml_task_id: string | null;
  ml_status: MlStatus | null;
  ml_message: string | null;
  results_url: string | null;
  subject_assistant_url: string | null;
  error: {code: string; message: string} | null;
  results_summary: ResultsSummary | null;
  /** the export whose failed and missing images this one sends again; null for a plain export */
  rerun_of?: string | null;
  /** failed + missing images (null until completed) */
  rerun_images?: number | null;
  /** a read-only link to the results CSV, minted when the export was read (valid up to an hour) */
  results_csv_url?: string | null;
}

export interface SubjectSet {
  id: string;
  display_name: string | null;
  subjects_count: number | null;
  latest_export: Export | null;
  latest_completed_export: Export | null;
}

export interface ProjectExports {
  subject_sets: SubjectSet[];
}

export interface User {
  id: string;
  login: string;
  display_name: string;
}

export interface Project {
  id: string;
  display_name: string | null;
  slug: string | null;
  roles: string[];
}

export interface Projects {
  user: User;
  projects: Project[];
}
