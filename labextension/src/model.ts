/**
 * Types shared by the MLOps panel: server responses and user settings.
 */

/**
 * How the server chose the tracking location.
 */
export type TrackingSource =
  'argument' | 'setting' | 'environment' | 'pyproject' | 'default';

/**
 * The tracking location resolved by the server.
 */
export interface ITrackingInfo {
  /** MLflow tracking URI, e.g. `sqlite:////abs/project/.mlops/mlflow.db`. */
  uri: string;
  /** Default artifact location, or null when the store decides. */
  artifact_uri: string | null;
  /** Which configuration layer supplied the URI. */
  source: TrackingSource;
  /** Human readable explanation of how the URI was chosen. */
  detail: string;
  /** Absolute path of the project root the server resolved against. */
  project_root: string;
}

/**
 * Whether the tracking store can be reached.
 */
export interface IStoreStatus {
  ok: boolean;
  /** Store kind, e.g. `sqlite`, `file`, `http`. */
  kind: string;
  message: string;
}

/**
 * Answer of `GET /jupyter-mlops/api/status`.
 */
export interface IStatusResponse {
  version: string;
  tracking: ITrackingInfo;
  store: IStoreStatus;
}

/**
 * Error body the server sends with a non-2xx answer.
 */
export interface IErrorResponse {
  /** Machine-readable error code, e.g. `store_unavailable`. */
  code?: string;
  /** Human readable description of the error. */
  message?: string;
  /** What the user can do about it. */
  hint?: string;
  /** HTTP reason phrase (jupyter_server's default error body). */
  reason?: string | null;
}

/**
 * User settings of the extension (see `schema/plugin.json`).
 */
export interface IMlopsSettings {
  /**
   * Tracking location override, sent as `X-MLOps-Tracking-URI` with every
   * request; empty means "use the server's resolution".
   */
  trackingUri: string;
  /** Number of runs fetched per page. */
  pageSize: number;
  /** Automatic refresh period in seconds; 0 disables it. */
  refreshInterval: number;
}

/**
 * Defaults, identical to those of the settings schema.
 */
export const DEFAULT_SETTINGS: Readonly<IMlopsSettings> = Object.freeze({
  trackingUri: '',
  pageSize: 50,
  refreshInterval: 5
});

/**
 * Build settings from the raw composite values of the setting registry,
 * falling back to defaults for missing or mistyped values.
 */
export function parseSettings(
  raw: Readonly<Record<string, unknown>>
): IMlopsSettings {
  const integer = (value: unknown, fallback: number, min: number): number =>
    typeof value === 'number' && Number.isFinite(value) && value >= min
      ? Math.floor(value)
      : fallback;
  return {
    trackingUri:
      typeof raw.trackingUri === 'string'
        ? raw.trackingUri.trim()
        : DEFAULT_SETTINGS.trackingUri,
    pageSize: integer(raw.pageSize, DEFAULT_SETTINGS.pageSize, 1),
    refreshInterval: integer(
      raw.refreshInterval,
      DEFAULT_SETTINGS.refreshInterval,
      0
    )
  };
}

/**
 * One side of a diff or a review: what the user asked for and how to show it.
 */
export interface IRefInfo {
  /** The reference as given: run id, `models:/NAME/VERSION`, a path, `git:REV:PATH`. */
  ref: string;
  /** Human readable label chosen by the server. */
  label: string;
}

/**
 * Answer of `GET /jupyter-mlops/api/diff`: the notebook of `a` and nbdime's
 * diff from `a` to `b`.
 */
export interface IDiffResponse {
  /** Notebook JSON of `a` (nbformat 4). */
  base: Record<string, unknown>;
  /** nbdime diff entries from `a` to `b`. */
  diff: unknown[];
  a: IRefInfo;
  b: IRefInfo;
}

/**
 * Options of a diff request.
 */
export interface IDiffOptions {
  /** Leave outputs out of the diff. */
  ignoreOutputs?: boolean;
  /** Leave notebook and cell metadata out of the diff. */
  ignoreMetadata?: boolean;
}

/**
 * State of a review.
 */
export type ReviewState = 'open' | 'approved' | 'changes_requested';

/**
 * A reviewer's decision.
 */
export type ReviewDecision = 'approve' | 'request_changes';

/**
 * A comment on a cell of the candidate notebook.
 */
export interface IReviewComment {
  id: string;
  /** Id of the candidate notebook's cell the comment is anchored to. */
  cell_id: string;
  text: string;
  author: string;
  /** ISO 8601 time. */
  created_at: string;
}

/**
 * A review of a candidate (run or model version) against a base.
 */
export interface IReview {
  id: string;
  state: ReviewState;
  candidate: IRefInfo;
  /** Null when the candidate is compared with an empty notebook. */
  base: IRefInfo | null;
  created_at: string;
  created_by: string;
  decided_at: string | null;
  decided_by: string | null;
  comments: IReviewComment[];
  /** Path of the review's diff, relative to the server's base URL. */
  diff_url: string;
}

/**
 * Answer of `GET /jupyter-mlops/api/reviews`.
 */
export interface IReviewList {
  /** Newest first. */
  reviews: IReview[];
}

/**
 * An MLflow experiment, as listed by `GET /jupyter-mlops/api/experiments`.
 */
export interface IExperiment {
  id: string;
  name: string;
}

/**
 * Answer of `GET /jupyter-mlops/api/experiments`.
 */
export interface IExperimentList {
  /** Most recently created first. */
  experiments: IExperiment[];
}

/**
 * MLflow run status.
 */
export type RunStatus =
  'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

/**
 * A run as the runs table shows it.
 */
export interface IRunSummary {
  id: string;
  name: string;
  experiment_id: string;
  status: RunStatus;
  /** Epoch milliseconds. */
  start_time: number | null;
  /** Epoch milliseconds; null while the run is active. */
  end_time: number | null;
  params: Record<string, string>;
  /** Latest value of each metric; null for NaN and infinities. */
  metrics: Record<string, number | null>;
  /** The `mlops.*` tags and a few of MLflow's. */
  tags: Record<string, string>;
}

/**
 * Answer of `GET /jupyter-mlops/api/runs`.
 */
export interface IRunsPage {
  runs: IRunSummary[];
  /** Null on the last page. */
  next_page_token: string | null;
}

/**
 * A search of runs: MLflow's filter syntax and one ordering clause.
 */
export interface IRunQuery {
  /** Experiment id; empty means every experiment. */
  experiment: string;
  /** MLflow search filter, e.g. `metrics.acc > 0.9 and params.lr = '0.01'`. */
  filter: string;
  /** e.g. `metrics.acc DESC`; empty means newest first. */
  orderBy: string;
  pageToken?: string | null;
  maxResults?: number;
}

/**
 * A top-level artifact of a run.
 */
export interface IArtifact {
  path: string;
  is_dir: boolean;
  size: number | null;
}

/**
 * One tracked cell execution, from the run's `cells.jsonl`.
 */
export interface ICellRecord {
  execution_count?: number | null;
  cell_id?: string | null;
  source?: string;
  status?: string;
  step?: number;
  duration_s?: number;
  metrics?: Record<string, number>;
  params?: Record<string, unknown>;
}

/**
 * Answer of `GET /jupyter-mlops/api/runs/{run_id}`.
 */
export interface IRunDetails extends IRunSummary {
  artifacts: IArtifact[];
  cells: ICellRecord[];
}

/**
 * One logged value of a metric.
 */
export interface IMetricPoint {
  step: number;
  value: number | null;
  /** Epoch milliseconds. */
  timestamp: number;
}

/**
 * Answer of `GET /jupyter-mlops/api/runs/{run_id}/metrics/{key}`.
 */
export interface IMetricHistory {
  key: string;
  history: IMetricPoint[];
}

/**
 * A registered model, as `GET /jupyter-mlops/api/models` lists it.
 */
export interface IRegisteredModel {
  name: string;
  description: string;
  /** Alias to version number. */
  aliases: Record<string, string>;
  latest_version: string | null;
  /** Epoch milliseconds. */
  last_updated: number | null;
  tags: Record<string, string>;
}

/**
 * Answer of `GET /jupyter-mlops/api/models`.
 */
export interface IModelList {
  models: IRegisteredModel[];
}

/**
 * The review state of a model version: from its tags, else from its run's.
 */
export interface IModelReview {
  state: string;
  id: string | null;
  on: 'version' | 'run';
}

/**
 * One version of a registered model.
 */
export interface IModelVersion {
  version: string;
  /** `models:/NAME/VERSION`. */
  uri: string;
  aliases: string[];
  run_id: string | null;
  run_exists: boolean;
  review: IModelReview | null;
  flavor: string | null;
  notebook: string | null;
  source: string;
  status: string;
  /** Epoch milliseconds. */
  created: number | null;
  tags: Record<string, string>;
}

/**
 * Answer of `GET /jupyter-mlops/api/models/{name}/versions`.
 */
export interface IModelVersionList {
  name: string;
  /** Alias to version number. */
  aliases: Record<string, string>;
  versions: IModelVersion[];
}

/**
 * A promotion record of a version (tag `mlops.promoted.<alias>`).
 */
export interface IPromotionRecord {
  version: string;
  by: string;
  at: string;
  review_id: string | null;
  review_on: string | null;
  note: string | null;
}

/**
 * Answer of `GET /jupyter-mlops/api/models/{name}/versions/{version}/lineage`:
 * the same chain as `jupyter mlops lineage --json`.
 */
export interface ILineage {
  model: {
    name: string;
    version: string;
    uri: string;
    aliases: string[];
    source: string;
    flavor: string | null;
  };
  run: {
    id: string | null;
    experiment: string | null;
    status: string | null;
    problem: string | null;
  };
  notebook: {
    path: string | null;
    snapshot: string | null;
    snapshot_artifact: string | null;
  };
  params: {
    hash: string | null;
    values: Record<string, string> | null;
  };
  data: { name: string | null; digest: string; rows?: number | null }[];
  environment: {
    hash: string | null;
    git_commit: string | null;
    git_dirty: boolean | null;
  };
  review: { id: string; on: string } | null;
  reproduced: string | null;
  promotions: Record<string, IPromotionRecord>;
}

/**
 * Answer of `POST /jupyter-mlops/api/models/{name}/versions/{version}/aliases`.
 */
export interface IPromotion {
  name: string;
  version: string;
  alias: string;
  uri: string;
  by: string;
  at: string;
  review_id: string | null;
  review_on: string | null;
  note: string | null;
}

/**
 * State of a batch job the server started.
 */
export type BatchState = 'running' | 'finished' | 'failed' | 'stopped';

/**
 * A value a sweep can take.
 */
export type GridValue = string | number | boolean;

/**
 * A batch job (`jupyter mlops batch` started by the server).
 */
export interface IBatchJob {
  id: string;
  state: BatchState;
  exit_code: number | null;
  notebook: string;
  grid: Record<string, GridValue[]>;
  workers: number;
  points: number;
  done: number;
  failed: number;
  batch_run_id: string | null;
  created_by: string;
  created_at: string;
  /** The tail of its log (one job only). */
  log?: string;
}

/**
 * Answer of `GET /jupyter-mlops/api/batches`.
 */
export interface IBatchList {
  batches: IBatchJob[];
}

/**
 * Body of `POST /jupyter-mlops/api/batches`.
 */
export interface IBatchRequest {
  notebook: string;
  grid: Record<string, GridValue[]>;
  workers: number;
}
