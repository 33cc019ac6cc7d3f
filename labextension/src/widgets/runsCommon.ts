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
