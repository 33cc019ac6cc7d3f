import * as React from 'react';

import { ICellRecord, IMetricPoint, IRunDetails } from '../model';
import { MetricChart } from './charts';
import {
  errorText,
  formatNumber,
  formatTime,
  IRunsApi,
  runNotebookArtifact
} from './runsCommon';

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

  const [artifactError, setArtifactError] = React.useState<string | null>(null);
  const [downloading, setDownloading] = React.useState<string | null>(null);

  const onDiff = (): void => {
    void api.diffAgainst(runId);
  };

  const notebook = run ? runNotebookArtifact(run.tags, run.artifacts) : null;
  const runLabel = run?.name || runId.slice(0, 8);

  const onOpenNotebook = (): void => {
    if (notebook === null) {
      return;
    }
    setArtifactError(null);
    api.openNotebook(runId, notebook, runLabel).catch(reason => {
      setArtifactError(errorText(reason));
    });
  };

  const onDownload = (path: string): void => {
    setArtifactError(null);
    setDownloading(path);
    api
      .downloadArtifact(runId, path)
      .catch(reason => {
        setArtifactError(`Cannot download ${path}: ${errorText(reason)}`);
      })
      .finally(() => {
        setDownloading(current => (current === path ? null : current));
      });
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
        {notebook !== null && (
          <button
            type="button"
            className="jp-mlops-button"
            onClick={onOpenNotebook}
            title={`Open ${notebook} read-only in a tab`}
            aria-label="Open notebook snapshot (read-only)"
            data-testid="mlops-run-open-snapshot"
            data-path={notebook}
          >
            Open notebook snapshot
          </button>
        )}
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
          {artifactError !== null && (
            <p
              className="jp-mlops-error"
              role="alert"
              data-testid="mlops-artifact-error"
            >
              {artifactError}
            </p>
          )}
          <ul className="jp-mlops-artifacts">
            {notebook !== null && (
              <ArtifactItem
                path={notebook}
                size={null}
                isDir={false}
                busy={downloading === notebook}
                onDownload={onDownload}
              />
            )}
            {run.artifacts.map(artifact => (
              <ArtifactItem
                key={artifact.path}
                path={artifact.path}
                size={artifact.size}
                isDir={artifact.is_dir}
                busy={downloading === artifact.path}
                onDownload={onDownload}
              />
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

/**
 * One artifact: its path and size, and a Download button for a file.
 */
function ArtifactItem(props: {
  path: string;
  size: number | null;
  isDir: boolean;
  busy: boolean;
  onDownload: (path: string) => void;
}): React.JSX.Element {
  const { path, size, isDir, busy, onDownload } = props;
  return (
    <li
      className="jp-mlops-artifact"
      data-testid="mlops-run-artifact"
      data-path={path}
    >
      <span className="jp-mlops-code">
        {path}
        {isDir ? '/' : ''}
        {size !== null && !isDir ? ` (${size} B)` : ''}
      </span>
      {!isDir && (
        <button
          type="button"
          className="jp-mlops-button jp-mlops-artifact-download"
          onClick={() => onDownload(path)}
          aria-label={`Download ${path}`}
          title={`Download ${path}`}
          aria-busy={busy}
          disabled={busy}
          data-testid="mlops-artifact-download"
        >
          Download
        </button>
      )}
    </li>
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
