import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  IBatchJob,
  IBatchList,
  IBatchRequest,
  IDiffOptions,
  IDiffResponse,
  IErrorResponse,
  IExperimentList,
  ILineage,
  IMetricHistory,
  IModelList,
  IModelVersionList,
  IPromotion,
  IReview,
  IReviewList,
  IRunDetails,
  IRunQuery,
  IRunsPage,
  IStatusResponse,
  ReviewDecision
} from './model';

/**
 * Path of the server extension's REST API, relative to the base URL.
 */
export const API_NAMESPACE = 'jupyter-mlops/api';

/**
 * Request header naming the tracking location a request works on (the
 * `trackingUri` setting); the server checks it and refuses what it does not accept.
 */
export const TRACKING_HEADER = 'X-MLOps-Tracking-URI';

let trackingOverride = '';

/**
 * Send `uri` as the tracking location with every later request ('' stops).
 */
export function setTrackingUri(uri: string): void {
  trackingOverride = uri.trim();
}

/**
 * The tracking location sent with each request ('' when none).
 */
export function trackingUri(): string {
  return trackingOverride;
}

/**
 * `init` with the tracking header added when the setting is set.
 *
 * @throws {MlopsApiError} when the setting cannot be sent in a header
 */
function withTracking(init: RequestInit): RequestInit {
  if (!trackingOverride) {
    return init;
  }
  // A header is ISO-8859-1: say what is wrong instead of fetch's TypeError.
  if (/[^\x20-\x7e]/.test(trackingOverride)) {
    throw new MlopsApiError(
      'The MLOps setting "Tracking URI" must be printable ASCII (percent-encode the rest of a URL)',
      0
    );
  }
  const headers = new Headers(init.headers);
  headers.set(TRACKING_HEADER, trackingOverride);
  return { ...init, headers };
}

/**
 * Error thrown by {@link requestAPI}.
 *
 * `status` is the HTTP status code, or 0 when no answer was received
 * (network failure) and `message` is the server's JSON `message` when it sent
 * one.
 */
export class MlopsApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown = null
  ) {
    super(message);
    this.name = 'MlopsApiError';
    const fields = asErrorResponse(body);
    this.code = typeof fields?.code === 'string' ? fields.code : null;
    this.hint = typeof fields?.hint === 'string' ? fields.hint : null;
  }

  /** The server's error `code`, when it sent one. */
  readonly code: string | null;
  /** The server's `hint` (what the user can do), when it sent one. */
  readonly hint: string | null;
}

/**
 * Call the jupyter-mlops server extension.
 *
 * @param endPoint API path under `jupyter-mlops/api`, e.g. `status`
 * @param init Initial values for the request
 * @param settings Server connection settings (defaults to the page's)
 * @returns The decoded JSON answer (or `null` for an empty body)
 * @throws {MlopsApiError} on network failure, HTTP error or invalid JSON
 */
export function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  return requestURL<T>(url, endPoint || API_NAMESPACE, init, settings);
}

/**
 * Send an authenticated request to `url` and decode its JSON answer.
 *
 * @param url Absolute URL (query string included)
 * @param name What to call the endpoint in error messages
 * @throws {MlopsApiError} on network failure, HTTP error or invalid JSON
 */
async function requestURL<T>(
  url: string,
  name: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
): Promise<T> {
  const response = await send(url, init, settings);
  const text = await response.text();
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      if (response.ok) {
        throw new MlopsApiError(
          `Invalid JSON from ${name}`,
          response.status,
          text
        );
      }
      data = text;
    }
  }

  if (!response.ok) {
    throw new MlopsApiError(
      errorMessage(data) ??
        `${response.status} ${response.statusText || 'Error'}`.trim(),
      response.status,
      data
    );
  }
  return data as T;
}

/**
 * Send an authenticated request (token, XSRF, the tracking header).
 *
 * @throws {MlopsApiError} on network failure
 */
async function send(
  url: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
): Promise<Response> {
  const request = withTracking(init);
  try {
    return await ServerConnection.makeRequest(url, request, settings);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new MlopsApiError(`Cannot reach the Jupyter server: ${reason}`, 0);
  }
}

/**
 * Fetch one artifact file of a run as a blob.
 *
 * @param path Artifact path relative to the run's artifact root
 * @param download Ask for it as an attachment (`?download=1`)
 * @throws {MlopsApiError} with the server's message (400 bad path, 404, 413)
 */
export async function fetchArtifact(
  runId: string,
  path: string,
  download = false,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<Blob> {
  const query: Record<string, string> = { path };
  if (download) {
    query.download = '1';
  }
  const url =
    URLExt.join(
      settings.baseUrl,
      API_NAMESPACE,
      'runs',
      encodeURIComponent(runId),
      'artifacts'
    ) + URLExt.objectToQueryString(query);
  const response = await send(url, { method: 'GET' }, settings);
  if (!response.ok) {
    const text = await response.text();
    let data: unknown = text;
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    throw new MlopsApiError(
      errorMessage(data) ??
        `${response.status} ${response.statusText || 'Error'}`.trim(),
      response.status,
      data
    );
  }
  return response.blob();
}

/**
 * Fetch one artifact of a run and hand it to the browser as a download.
 */
export async function downloadArtifact(
  runId: string,
  path: string,
  settings?: ServerConnection.ISettings
): Promise<void> {
  const blob = await fetchArtifact(runId, path, true, settings);
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = path.split('/').pop() || 'artifact';
  link.style.display = 'none';
  document.body.appendChild(link);
  try {
    link.click();
  } finally {
    link.remove();
    // The browser has taken the blob once the click's task ran.
    window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}

/**
 * Fetch a notebook artifact of a run (a snapshot or an executed notebook).
 *
 * @throws {MlopsApiError} when it is missing or is not JSON
 */
export async function fetchNotebookArtifact(
  runId: string,
  path: string,
  settings?: ServerConnection.ISettings
): Promise<Record<string, unknown>> {
  const blob = await fetchArtifact(runId, path, false, settings);
  let data: unknown;
  try {
    data = JSON.parse(await blob.text());
  } catch {
    throw new MlopsApiError(`${path} is not a notebook (invalid JSON)`, 200);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new MlopsApiError(`${path} is not a notebook`, 200);
  }
  return data as Record<string, unknown>;
}

/**
 * Fetch the server's status: version, tracking location, store state.
 */
export function fetchStatus(
  settings?: ServerConnection.ISettings
): Promise<IStatusResponse> {
  return requestAPI<IStatusResponse>('status', { method: 'GET' }, settings);
}

/**
 * Fetch the diff from notebook `a` to notebook `b`.
 *
 * A reference is a run id, `models:/NAME/VERSION`, `models:/NAME@ALIAS`, a
 * notebook path relative to the server root, or `git:REV:PATH`.
 */
export function fetchDiff(
  a: string,
  b: string,
  options: IDiffOptions = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IDiffResponse> {
  const query: Record<string, string> = { a, b };
  if (options.ignoreOutputs) {
    query.ignore_outputs = '1';
  }
  if (options.ignoreMetadata) {
    query.ignore_metadata = '1';
  }
  const url =
    URLExt.join(settings.baseUrl, API_NAMESPACE, 'diff') +
    URLExt.objectToQueryString(query);
  return requestURL<IDiffResponse>(url, 'diff', { method: 'GET' }, settings);
}

/**
 * Fetch a diff by the path the server gave for it (a review's `diff_url`,
 * relative to the base URL, query string included).
 */
export function fetchDiffAt(
  path: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IDiffResponse> {
  // Not URLExt.join: it would normalize the query string's slashes and dots.
  const url =
    settings.baseUrl.replace(/\/+$/, '') + '/' + path.replace(/^\/+/, '');
  return requestURL<IDiffResponse>(url, 'diff', { method: 'GET' }, settings);
}

/**
 * List the reviews, newest first.
 */
export function listReviews(
  settings?: ServerConnection.ISettings
): Promise<IReviewList> {
  return requestAPI<IReviewList>('reviews', { method: 'GET' }, settings);
}

/**
 * Open a review of `candidate` against `base` (null: the server's default).
 */
export function createReview(
  candidate: string,
  base: string | null = null,
  settings?: ServerConnection.ISettings
): Promise<IReview> {
  return requestAPI<IReview>(
    'reviews',
    { method: 'POST', body: JSON.stringify({ candidate, base }) },
    settings
  );
}

/**
 * Fetch one review.
 */
export function fetchReview(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<IReview> {
  return requestAPI<IReview>(
    `reviews/${encodeURIComponent(id)}`,
    { method: 'GET' },
    settings
  );
}

/**
 * Comment on a cell of the review's candidate; returns the updated review.
 */
export function addReviewComment(
  id: string,
  cellId: string,
  text: string,
  settings?: ServerConnection.ISettings
): Promise<IReview> {
  return requestAPI<IReview>(
    `reviews/${encodeURIComponent(id)}/comments`,
    { method: 'POST', body: JSON.stringify({ cell_id: cellId, text }) },
    settings
  );
}

/**
 * Approve a review or request changes; returns the updated review.
 */
export function decideReview(
  id: string,
  decision: ReviewDecision,
  message?: string,
  settings?: ServerConnection.ISettings
): Promise<IReview> {
  const body: Record<string, string> = { decision };
  if (message) {
    body.message = message;
  }
  return requestAPI<IReview>(
    `reviews/${encodeURIComponent(id)}/decision`,
    { method: 'POST', body: JSON.stringify(body) },
    settings
  );
}

/**
 * List the active experiments, most recently created first.
 */
export function listExperiments(
  settings?: ServerConnection.ISettings
): Promise<IExperimentList> {
  return requestAPI<IExperimentList>(
    'experiments',
    { method: 'GET' },
    settings
  );
}

/**
 * Fetch one page of runs, filtered, sorted and paged by the server.
 */
export function searchRuns(
  query: IRunQuery,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IRunsPage> {
  const params: Record<string, string> = {};
  if (query.experiment) {
    params.experiment = query.experiment;
  }
  if (query.filter.trim()) {
    params.filter = query.filter.trim();
  }
  if (query.orderBy) {
    params.order_by = query.orderBy;
  }
  if (query.pageToken) {
    params.page_token = query.pageToken;
  }
  if (query.maxResults) {
    params.max_results = String(query.maxResults);
  }
  const url =
    URLExt.join(settings.baseUrl, API_NAMESPACE, 'runs') +
    URLExt.objectToQueryString(params);
  return requestURL<IRunsPage>(url, 'runs', { method: 'GET' }, settings);
}

/**
 * Fetch a run with its artifacts and cell records.
 */
export function fetchRun(
  runId: string,
  settings?: ServerConnection.ISettings
): Promise<IRunDetails> {
  return requestAPI<IRunDetails>(
    `runs/${encodeURIComponent(runId)}`,
    { method: 'GET' },
    settings
  );
}

/**
 * Fetch every logged value of one metric of a run.
 */
export function fetchMetricHistory(
  runId: string,
  key: string,
  settings?: ServerConnection.ISettings
): Promise<IMetricHistory> {
  return requestAPI<IMetricHistory>(
    `runs/${encodeURIComponent(runId)}/metrics/${encodeURIComponent(key)}`,
    { method: 'GET' },
    settings
  );
}

/**
 * List the registered models with their aliases and latest version.
 */
export function listModels(
  settings?: ServerConnection.ISettings
): Promise<IModelList> {
  return requestAPI<IModelList>('models', { method: 'GET' }, settings);
}

/**
 * Fetch the versions of a registered model, newest first.
 */
export function fetchModelVersions(
  name: string,
  settings?: ServerConnection.ISettings
): Promise<IModelVersionList> {
  return requestAPI<IModelVersionList>(
    `models/${encodeURIComponent(name)}/versions`,
    { method: 'GET' },
    settings
  );
}

/**
 * Fetch the lineage of a model version (`jupyter mlops lineage --json`).
 */
export function fetchModelLineage(
  name: string,
  version: string,
  settings?: ServerConnection.ISettings
): Promise<ILineage> {
  return requestAPI<ILineage>(
    `models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/lineage`,
    { method: 'GET' },
    settings
  );
}

/**
 * Point `alias` at a model version through the project's promotion gate.
 *
 * @throws {MlopsApiError} with status 409 and code `policy` when refused
 */
export function promoteModelVersion(
  name: string,
  version: string,
  alias: string,
  note?: string,
  settings?: ServerConnection.ISettings
): Promise<IPromotion> {
  const body: Record<string, string> = { alias };
  if (note) {
    body.note = note;
  }
  return requestAPI<IPromotion>(
    `models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/aliases`,
    { method: 'POST', body: JSON.stringify(body) },
    settings
  );
}

/**
 * Start `jupyter mlops batch` on the server (needs the `execute` permission).
 */
export function startBatch(
  request: IBatchRequest,
  settings?: ServerConnection.ISettings
): Promise<IBatchJob> {
  return requestAPI<IBatchJob>(
    'batches',
    { method: 'POST', body: JSON.stringify(request) },
    settings
  );
}

/**
 * List the batch jobs this server started, newest first.
 */
export function listBatches(
  settings?: ServerConnection.ISettings
): Promise<IBatchList> {
  return requestAPI<IBatchList>('batches', { method: 'GET' }, settings);
}

/**
 * Stop a batch job; its runs end KILLED and the batch stays resumable.
 */
export function stopBatch(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<IBatchJob> {
  return requestAPI<IBatchJob>(
    `batches/${encodeURIComponent(id)}`,
    { method: 'DELETE' },
    settings
  );
}

/**
 * Extract the `message` of a server error body, if any.
 */
function errorMessage(data: unknown): string | null {
  const fields = asErrorResponse(data);
  if (fields) {
    const { message, reason } = fields;
    if (typeof message === 'string' && message.length > 0) {
      return message;
    }
    if (typeof reason === 'string' && reason.length > 0) {
      return reason;
    }
  }
  return null;
}

function asErrorResponse(data: unknown): IErrorResponse | null {
  return data !== null && typeof data === 'object' && !Array.isArray(data)
    ? (data as IErrorResponse)
    : null;
}
