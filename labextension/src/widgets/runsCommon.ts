import { MlopsApiError } from '../api';
import {
  IExperimentList,
  IMetricHistory,
  IRunDetails,
  IRunQuery,
  IRunsPage
} from '../model';

/**
 * What the runs section needs from the server and the application.
 */
export interface IRunsApi {
  listExperiments: () => Promise<IExperimentList>;
  searchRuns: (query: IRunQuery) => Promise<IRunsPage>;
  fetchRun: (runId: string) => Promise<IRunDetails>;
  fetchMetricHistory: (runId: string, key: string) => Promise<IMetricHistory>;
  /** Ask for another reference and open its diff against `runId`. */
  diffAgainst: (runId: string) => Promise<void>;
  /** Open the notebook diff from reference `a` to `b`. */
  openDiff: (a: string, b: string) => Promise<void>;
  /** Save one artifact file of a run through the browser's download. */
  downloadArtifact: (runId: string, path: string) => Promise<void>;
  /** Open a notebook artifact of a run, read-only, in a main-area tab. */
  openNotebook: (runId: string, path: string, label: string) => Promise<void>;
}

/** Tag of a `jupyter mlops run` run: the notebook it executed. */
export const TAG_INPUT_NOTEBOOK = 'mlops.input_notebook';
/** Tag of a `jupyter mlops run` run: the snapshot of its input notebook. */
export const TAG_INPUT_SNAPSHOT = 'mlops.input_snapshot';
/** Tag of a tracked (`%mlops_track`) run: its latest notebook snapshot. */
export const TAG_SNAPSHOT = 'mlops.snapshot';

/**
 * The notebook artifact behind a run, as the server's notebook versions read
 * it: a papermill run's executed notebook (outputs included), else its input
 * snapshot; a tracked run's latest snapshot. Null when the run has none.
 */
export function runNotebookArtifact(
  tags: Record<string, string>,
  artifacts: { path: string; is_dir: boolean }[]
): string | null {
  const folders = new Set(artifacts.filter(a => a.is_dir).map(a => a.path));
  const input = tags[TAG_INPUT_NOTEBOOK];
  if (input && folders.has('executed')) {
    const name = input.split(/[\\/]/).pop();
    if (name) {
      return `executed/${name}`;
    }
  }
  const digest = tags[TAG_INPUT_SNAPSHOT] || tags[TAG_SNAPSHOT];
  if (digest && /^[0-9a-f]{8,128}$/.test(digest) && folders.has('snapshots')) {
    return `snapshots/${digest}.ipynb`;
  }
  return null;
}

/**
 * The message of an error, for a line in the panel.
 */
export function errorText(error: unknown): string {
  if (error instanceof MlopsApiError || error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/**
 * Epoch milliseconds as local `YYYY-MM-DD HH:MM`.
 */
export function formatTime(ms: number | null): string {
  if (ms === null) {
    return '';
  }
  const date = new Date(ms);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/**
 * A metric value in four significant digits; a dash for null.
 */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined) {
    return '—';
  }
  return Number.isInteger(value)
    ? String(value)
    : String(Number(value.toPrecision(4)));
}
