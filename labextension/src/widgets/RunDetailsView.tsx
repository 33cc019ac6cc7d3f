import * as React from 'react';

import { ICellRecord, IMetricPoint, IRunDetails } from '../model';
import { MetricChart } from './charts';
import { errorText, formatNumber, formatTime, IRunsApi } from './runsCommon';

/** Most metric histories fetched for one run's charts. */
const MAX_CHARTS = 30;

/**
 * Props of {@link RunDetailsView}.
 */
export interface IRunDetailsViewProps {
  api: IRunsApi;
  runId: string;
  onBack: () => void;
}

/**
 * One run: params, metrics with their history, cell records, artifacts.
 */
export function RunDetailsView(props: IRunDetailsViewProps): React.JSX.Element {
  const { api, runId, onBack } = props;
  const [run, setRun] = React.useState<IRunDetails | null>(null);
  const [histories, setHistories] = React.useState<
    Record<string, IMetricPoint[]>
  >({});
  const [error, setError] = React.useState<string | null>(null);

  React.useEffect(() => {
    let live = true;
    setRun(null);
    setHistories({});
    setError(null);
    const load = async (): Promise<void> => {
      try {
        const details = await api.fetchRun(runId);
        if (!live) {
          return;
        }
        setRun(details);
        // A chart that cannot load is left out; the value is still shown.
        const answers = await Promise.allSettled(
          Object.keys(details.metrics)
            .slice(0, MAX_CHARTS)
            .map(key => api.fetchMetricHistory(runId, key))
        );
        if (live) {
          const loaded: Record<string, IMetricPoint[]> = {};
          for (const answer of answers) {
            if (answer.status === 'fulfilled') {
              loaded[answer.value.key] = answer.value.history;
            }
          }
          setHistories(loaded);
        }
      } catch (reason) {
        if (live) {
          setError(errorText(reason));
        }
      }
    };
    void load();
    return () => {
      live = false;
    };
  }, [api, runId]);

  const onDiff = (): void => {
    void api.diffAgainst(runId);
  };

  return (
    <section
      className="jp-mlops-run-details"
      aria-labelledby="jp-mlops-run-title"
      data-testid="mlops-run-details"
    >
      <header className="jp-mlops-header">
        <button
          type="button"
          className="jp-mlops-button"
          onClick={onBack}
          data-testid="mlops-run-back"
        >
          ← Runs
        </button>
        <button
          type="button"
          className="jp-mlops-button"
          onClick={onDiff}
          title="Diff this run's notebook against another run, model version or notebook"
          data-testid="mlops-run-diff"
        >
          Diff against…
        </button>
      </header>
      <h3 id="jp-mlops-run-title" className="jp-mlops-subtitle">
        {run?.name || runId}
      </h3>
      {error !== null && (
        <p
          className="jp-mlops-error"
          role="alert"
          data-testid="mlops-run-error"
        >
          {error}
        </p>
      )}
      {run === null && error === null && (
        <p className="jp-mlops-loading" role="status">
          Loading…
        </p>
      )}
      {run !== null && (
        <>
          <dl className="jp-mlops-fields">
            <dt>Run id</dt>
            <dd className="jp-mlops-code" data-testid="mlops-run-id">
              {run.id}
            </dd>
            <dt>Status</dt>
            <dd data-testid="mlops-run-status-text">{run.status}</dd>
            <dt>Started</dt>
            <dd>{formatTime(run.start_time)}</dd>
            <dt>Ended</dt>
            <dd>{formatTime(run.end_time)}</dd>
          </dl>

          <h4 className="jp-mlops-subtitle">Params</h4>
          <KeyValues
            values={run.params}
            testId="mlops-run-param"
            empty="No params."
          />

          <h4 className="jp-mlops-subtitle">Metrics</h4>
          {Object.keys(run.metrics).length === 0 && (
            <p className="jp-mlops-loading">No metrics.</p>
          )}
          {Object.entries(run.metrics).map(([key, value]) => (
            <div
              key={key}
              className="jp-mlops-metric"
              data-testid="mlops-run-metric"
              data-metric={key}
            >
              <div className="jp-mlops-metric-head">
                <span className="jp-mlops-code">{key}</span>
                <span>{formatNumber(value)}</span>
              </div>
              {(histories[key]?.length ?? 0) > 1 && (
                <MetricChart metric={key} points={histories[key]} />
              )}
            </div>
          ))}

          <h4 className="jp-mlops-subtitle">Tracked cells</h4>
          {run.cells.length === 0 && (
            <p className="jp-mlops-loading">No cell records.</p>
          )}
          <ol className="jp-mlops-cells">
            {run.cells.map((cell, index) => (
              <CellRecordView key={index} cell={cell} />
            ))}
          </ol>

          <h4 className="jp-mlops-subtitle">Artifacts</h4>
          <ul className="jp-mlops-artifacts">
            {run.artifacts.map(artifact => (
              <li
                key={artifact.path}
                className="jp-mlops-code"
                data-testid="mlops-run-artifact"
              >
                {artifact.path}
                {artifact.is_dir ? '/' : ''}
                {artifact.size !== null && !artifact.is_dir
                  ? ` (${artifact.size} B)`
                  : ''}
              </li>
            ))}
          </ul>

          <h4 className="jp-mlops-subtitle">Tags</h4>
          <KeyValues
            values={run.tags}
            testId="mlops-run-tag"
            empty="No tags."
          />
        </>
      )}
    </section>
  );
}

function KeyValues(props: {
  values: Record<string, string>;
  testId: string;
  empty: string;
}): React.JSX.Element {
  const entries = Object.entries(props.values);
  if (entries.length === 0) {
    return <p className="jp-mlops-loading">{props.empty}</p>;
  }
  return (
    <dl className="jp-mlops-fields">
      {entries.map(([key, value]) => (
        <React.Fragment key={key}>
          <dt className="jp-mlops-code">{key}</dt>
          <dd data-testid={props.testId} data-key={key}>
            {value}
          </dd>
        </React.Fragment>
      ))}
    </dl>
  );
}

function CellRecordView(props: { cell: ICellRecord }): React.JSX.Element {
  const { cell } = props;
  const metrics = Object.entries(cell.metrics ?? {});
  return (
    <li className="jp-mlops-cell" data-testid="mlops-run-cell">
      <div className="jp-mlops-cell-head">
        <span>[{cell.execution_count ?? ' '}]</span>
        {cell.cell_id && <span className="jp-mlops-code">{cell.cell_id}</span>}
        {cell.status && <span>{cell.status}</span>}
        {metrics.length > 0 && (
          <span>
            →{' '}
            {metrics
              .map(([key, value]) => `${key} = ${formatNumber(value)}`)
              .join(', ')}
          </span>
        )}
      </div>
      {cell.source && <pre className="jp-mlops-cell-source">{cell.source}</pre>}
    </li>
  );
}
