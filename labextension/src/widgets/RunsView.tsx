import * as React from 'react';

import { IExperimentList, IRunQuery, IRunSummary, RunStatus } from '../model';
import { CompareView } from './CompareView';
import { RunDetailsView } from './RunDetailsView';
import { errorText, formatNumber, formatTime, IRunsApi } from './runsCommon';

/**
 * Props of {@link RunsView}.
 */
export interface IRunsViewProps {
  api: IRunsApi;
  /** Runs fetched per page. */
  pageSize: number;
  /** Seconds between refreshes while a listed run is active; 0: never. */
  refreshInterval: number;
  /** Whether the panel is shown; the experiments load when it first is. */
  active: boolean;
}

/** Most params and metrics shown as columns of the runs table. */
const MAX_PARAM_COLUMNS = 3;
const MAX_METRIC_COLUMNS = 4;
/** The server's largest page. */
const MAX_PAGE_SIZE = 1000;

const STATUS_ICONS: Record<RunStatus, string> = {
  RUNNING: '▶',
  SCHEDULED: '◷',
  FINISHED: '✓',
  FAILED: '✗',
  KILLED: '■'
};

/**
 * A sortable column: what the header says and the MLflow key it orders by.
 */
interface IColumn {
  label: string;
  sortKey: string;
  kind: 'attribute' | 'param' | 'metric';
  key: string;
}

interface ISort {
  key: string;
  direction: 'ASC' | 'DESC';
}

/**
 * The param and metric keys worth a column: the first few, by name.
 */
function columnsFor(runs: IRunSummary[]): IColumn[] {
  const params = new Set<string>();
  const metrics = new Set<string>();
  for (const run of runs) {
    Object.keys(run.params).forEach(k => params.add(k));
    Object.keys(run.metrics).forEach(k => metrics.add(k));
  }
  const columns: IColumn[] = [
    {
      label: 'Name',
      sortKey: 'attributes.run_name',
      kind: 'attribute',
      key: 'name'
    },
    {
      label: 'Started',
      sortKey: 'attributes.start_time',
      kind: 'attribute',
      key: 'start_time'
    }
  ];
  for (const key of [...params].sort().slice(0, MAX_PARAM_COLUMNS)) {
    columns.push({ label: key, sortKey: `params.${key}`, kind: 'param', key });
  }
  for (const key of [...metrics].sort().slice(0, MAX_METRIC_COLUMNS)) {
    columns.push({
      label: key,
      sortKey: `metrics.${key}`,
      kind: 'metric',
      key
    });
  }
  return columns;
}

/** MLflow quotes keys with spaces or dots in backticks. */
function mlflowKey(sortKey: string): string {
  const dot = sortKey.indexOf('.');
  const prefix = sortKey.slice(0, dot);
  const key = sortKey.slice(dot + 1);
  return /^[A-Za-z0-9_]+$/.test(key) || prefix === 'attributes'
    ? sortKey
    : `${prefix}.\`${key}\``;
}

function cellText(run: IRunSummary, column: IColumn): string {
  switch (column.kind) {
    case 'attribute':
      return column.key === 'name'
        ? run.name || run.id.slice(0, 8)
        : formatTime(run.start_time);
    case 'param':
      return run.params[column.key] ?? '';
    case 'metric':
      return column.key in run.metrics
        ? formatNumber(run.metrics[column.key])
        : '';
  }
}

/**
 * The runs section: experiment picker, filter, sortable table, details.
 */
export function RunsView(props: IRunsViewProps): React.JSX.Element {
  const { api, pageSize, refreshInterval, active } = props;
  const [experiments, setExperiments] = React.useState<IExperimentList | null>(
    null
  );
  const [experiment, setExperiment] = React.useState<string>('');
  const [filterInput, setFilterInput] = React.useState<string>('');
  const [filter, setFilter] = React.useState<string>('');
  const [sort, setSort] = React.useState<ISort | null>(null);
  const [runs, setRuns] = React.useState<IRunSummary[]>([]);
  const [nextToken, setNextToken] = React.useState<string | null>(null);
  const [loading, setLoading] = React.useState<boolean>(false);
  const [error, setError] = React.useState<string | null>(null);
  const [selected, setSelected] = React.useState<string | null>(null);
  // Runs ticked for comparison, in the order they were ticked.
  const [picked, setPicked] = React.useState<IRunSummary[]>([]);
  const [comparing, setComparing] = React.useState<boolean>(false);
  const requestId = React.useRef(0);
  const started = React.useRef(false);

  const loadExperiments = React.useCallback(async (): Promise<void> => {
    try {
      setExperiments(await api.listExperiments());
    } catch (reason) {
      setError(errorText(reason));
    }
  }, [api]);

  const query = React.useCallback(
    (pageToken: string | null, size: number = pageSize): IRunQuery => ({
      experiment,
      filter,
      orderBy: sort ? `${mlflowKey(sort.key)} ${sort.direction}` : '',
      pageToken,
      maxResults: size
    }),
    [experiment, filter, sort, pageSize]
  );

  const load = React.useCallback(
    async (
      pageToken: string | null,
      options: { size?: number; quiet?: boolean } = {}
    ): Promise<void> => {
      const id = ++requestId.current;
      if (!options.quiet) {
        setLoading(true);
      }
      try {
        const page = await api.searchRuns(query(pageToken, options.size));
        if (id === requestId.current) {
          setRuns(previous =>
            pageToken ? [...previous, ...page.runs] : page.runs
          );
          setNextToken(page.next_page_token);
          setError(null);
        }
      } catch (reason) {
        if (id === requestId.current) {
          if (!pageToken) {
            setRuns([]);
            setNextToken(null);
          }
          setError(errorText(reason));
        }
      } finally {
        if (id === requestId.current) {
          setLoading(false);
        }
      }
    },
    [api, query]
  );

  React.useEffect(() => {
    if (active && !started.current) {
      started.current = true;
      void loadExperiments();
    }
  }, [active, loadExperiments]);

  // A new search whenever what is asked for changes (once shown).
  const lastLoad = React.useRef<typeof load | null>(null);
  React.useEffect(() => {
    if (active && lastLoad.current !== load) {
      lastLoad.current = load;
      void load(null);
    }
  }, [active, load]);

  // While a listed run is active, the loaded rows are fetched again now and then.
  const loadedCount = React.useRef(0);
  loadedCount.current = runs.length;
  const anyActive = runs.some(
    run => run.status === 'RUNNING' || run.status === 'SCHEDULED'
  );
  React.useEffect(() => {
    if (!active || !anyActive || refreshInterval <= 0) {
      return;
    }
    const timer = window.setInterval(() => {
      if (document.visibilityState !== 'hidden') {
        const size = Math.min(
          MAX_PAGE_SIZE,
          Math.max(pageSize, loadedCount.current)
        );
        void load(null, { size, quiet: true });
      }
    }, refreshInterval * 1000);
    return () => window.clearInterval(timer);
  }, [active, anyActive, refreshInterval, pageSize, load]);

  const columns = React.useMemo(() => columnsFor(runs), [runs]);

  const onSort = (column: IColumn): void => {
    setSort(current =>
      current?.key === column.sortKey
        ? {
            key: column.sortKey,
            direction: current.direction === 'DESC' ? 'ASC' : 'DESC'
          }
        : { key: column.sortKey, direction: 'DESC' }
    );
  };

  const onFilter = (event: React.FormEvent): void => {
    event.preventDefault();
    if (filterInput.trim() === filter) {
      void load(null);
    } else {
      setFilter(filterInput.trim());
    }
  };

  const onRefresh = (): void => {
    void loadExperiments();
    void load(null);
  };

  const togglePicked = (run: IRunSummary): void => {
    setPicked(current =>
      current.some(r => r.id === run.id)
        ? current.filter(r => r.id !== run.id)
        : [...current, run]
    );
  };

  if (comparing && picked.length >= 2) {
    return (
      <CompareView
        runs={picked}
        onBack={() => setComparing(false)}
        onDiff={(a, b) => void api.openDiff(a, b)}
      />
    );
  }

  if (selected !== null) {
    return (
      <RunDetailsView
        api={api}
        runId={selected}
        onBack={() => setSelected(null)}
      />
    );
  }

  return (
    <section
      className="jp-mlops-runs"
      aria-labelledby="jp-mlops-runs-title"
      data-testid="mlops-runs"
    >
      <header className="jp-mlops-header">
        <h3 id="jp-mlops-runs-title" className="jp-mlops-subtitle">
          Runs
        </h3>
        <button
          type="button"
          className="jp-mlops-button"
          onClick={onRefresh}
          aria-busy={loading}
          data-testid="mlops-runs-refresh"
        >
          Refresh
        </button>
      </header>

      <label className="jp-mlops-field">
        <span>Experiment</span>
        <select
          className="jp-mlops-select"
          value={experiment}
          onChange={event => setExperiment(event.target.value)}
          data-testid="mlops-experiment-select"
        >
          <option value="">All experiments</option>
          {(experiments?.experiments ?? []).map(e => (
            <option key={e.id} value={e.id}>
              {e.name}
            </option>
          ))}
        </select>
      </label>

      <form className="jp-mlops-filter" onSubmit={onFilter} role="search">
        <input
          type="search"
          className="jp-mlops-input"
          aria-label="Filter runs (MLflow search syntax)"
          placeholder="metrics.acc > 0.9 and params.lr = '0.01'"
          value={filterInput}
          onChange={event => setFilterInput(event.target.value)}
          data-testid="mlops-runs-filter"
        />
        <button
          type="submit"
          className="jp-mlops-button"
          data-testid="mlops-runs-filter-apply"
        >
          Filter
        </button>
      </form>

      {error !== null && (
        <p
          className="jp-mlops-error"
          role="alert"
          data-testid="mlops-runs-error"
        >
          {error}
        </p>
      )}

      <div className="jp-mlops-table-wrap">
        <table className="jp-mlops-table" data-testid="mlops-runs-table">
          <thead>
            <tr>
              <th scope="col" aria-label="Compare" />
              <th scope="col" aria-label="Status" />
              {columns.map(column => {
                const sorted = sort?.key === column.sortKey ? sort : null;
                return (
                  <th
                    key={column.sortKey}
                    scope="col"
                    className={`jp-mlops-col-${column.kind}`}
                    aria-sort={
                      sorted
                        ? sorted.direction === 'DESC'
                          ? 'descending'
                          : 'ascending'
                        : 'none'
                    }
                  >
                    <button
                      type="button"
                      className="jp-mlops-sort"
                      title={`Sort by ${column.sortKey}`}
                      onClick={() => onSort(column)}
                      data-testid={`mlops-sort-${column.sortKey}`}
                    >
                      {column.label}
                      {sorted
                        ? sorted.direction === 'DESC'
                          ? ' ▼'
                          : ' ▲'
                        : ''}
                    </button>
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {runs.map(run => (
              <tr
                key={run.id}
                className="jp-mlops-run-row"
                data-testid="mlops-run-row"
                data-run-id={run.id}
                tabIndex={0}
                onClick={() => setSelected(run.id)}
                onKeyDown={event => {
                  if (event.key === 'Enter' || event.key === ' ') {
                    event.preventDefault();
                    setSelected(run.id);
                  }
                }}
              >
                <td
                  className="jp-mlops-pick"
                  onClick={event => event.stopPropagation()}
                  onKeyDown={event => event.stopPropagation()}
                >
                  <input
                    type="checkbox"
                    aria-label={`Compare ${run.name || run.id}`}
                    checked={picked.some(r => r.id === run.id)}
                    onChange={() => togglePicked(run)}
                    data-testid="mlops-run-pick"
                  />
                </td>
                <td
                  className={`jp-mlops-status-icon jp-mlops-run-${run.status.toLowerCase()}`}
                  title={run.status}
                  data-testid="mlops-run-status"
                >
                  <span aria-label={run.status}>
                    {STATUS_ICONS[run.status] ?? '?'}
                  </span>
                </td>
                {columns.map(column => (
                  <td
                    key={column.sortKey}
                    className={`jp-mlops-col-${column.kind}`}
                    data-column={column.sortKey}
                  >
                    {cellText(run, column)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      {runs.length === 0 && !loading && error === null && (
        <p className="jp-mlops-loading" data-testid="mlops-runs-empty">
          No runs.
        </p>
      )}
      {loading && (
        <p className="jp-mlops-loading" role="status">
          Loading…
        </p>
      )}
      {picked.length > 0 && (
        <div className="jp-mlops-actions">
          <button
            type="button"
            className="jp-mlops-button"
            disabled={picked.length < 2}
            onClick={() => setComparing(true)}
            data-testid="mlops-runs-compare"
          >
            Compare {picked.length} runs
          </button>
          <button
            type="button"
            className="jp-mlops-button"
            onClick={() => setPicked([])}
          >
            Clear selection
          </button>
        </div>
      )}
      {nextToken !== null && (
        <button
          type="button"
          className="jp-mlops-button"
          disabled={loading}
          onClick={() => void load(nextToken)}
          data-testid="mlops-runs-more"
        >
          Load more
        </button>
      )}
    </section>
  );
}
