import * as React from 'react';

import { IRunSummary } from '../model';
import { ParamChart } from './charts';
import { formatNumber } from './runsCommon';

/**
 * Props of {@link CompareView}.
 */
export interface ICompareViewProps {
  runs: IRunSummary[];
  onBack: () => void;
  /** Open the notebook diff of two runs. */
  onDiff: (a: string, b: string) => void;
}

interface ICompareRow {
  kind: 'param' | 'metric';
  key: string;
  values: string[];
  differs: boolean;
}

function compareRows(runs: IRunSummary[]): ICompareRow[] {
  const rows: ICompareRow[] = [];
  const keys = (pick: (run: IRunSummary) => object): string[] =>
    [...new Set(runs.flatMap(run => Object.keys(pick(run))))].sort();
  for (const key of keys(run => run.params)) {
    const values = runs.map(run => run.params[key] ?? '');
    rows.push({
      kind: 'param',
      key,
      values,
      differs: new Set(values).size > 1
    });
  }
  for (const key of keys(run => run.metrics)) {
    const values = runs.map(run =>
      key in run.metrics ? formatNumber(run.metrics[key]) : ''
    );
    rows.push({
      kind: 'metric',
      key,
      values,
      differs: new Set(runs.map(run => run.metrics[key])).size > 1
    });
  }
  return rows;
}

/**
 * Params and metrics of several runs side by side, differences highlighted.
 */
export function CompareView(props: ICompareViewProps): React.JSX.Element {
  const { runs, onBack, onDiff } = props;
  const rows = React.useMemo(() => compareRows(runs), [runs]);
  const paramKeys = rows.filter(r => r.kind === 'param').map(r => r.key);
  const metricKeys = rows.filter(r => r.kind === 'metric').map(r => r.key);
  const [param, setParam] = React.useState<string>('');
  const [metric, setMetric] = React.useState<string>('');
  // The first differing param and metric, until the user picks others.
  const shownParam =
    param ||
    rows.find(r => r.kind === 'param' && r.differs)?.key ||
    paramKeys[0] ||
    '';
  const shownMetric =
    metric ||
    rows.find(r => r.kind === 'metric' && r.differs)?.key ||
    metricKeys[0] ||
    '';
  return (
    <section
      className="jp-mlops-compare"
      aria-labelledby="jp-mlops-compare-title"
      data-testid="mlops-compare"
    >
      <header className="jp-mlops-header">
        <button
          type="button"
          className="jp-mlops-button"
          onClick={onBack}
          data-testid="mlops-compare-back"
        >
          ← Runs
        </button>
        {runs.length === 2 && (
          <button
            type="button"
            className="jp-mlops-button"
            onClick={() => onDiff(runs[0].id, runs[1].id)}
            title="Open the notebook diff of the two runs"
            data-testid="mlops-compare-diff"
          >
            Notebook diff
          </button>
        )}
      </header>
      <h3 id="jp-mlops-compare-title" className="jp-mlops-subtitle">
        Compare {runs.length} runs
      </h3>
      <div className="jp-mlops-table-wrap">
        <table className="jp-mlops-table" data-testid="mlops-compare-table">
          <thead>
            <tr>
              <th scope="col">Key</th>
              {runs.map(run => (
                <th key={run.id} scope="col" title={run.id}>
                  {run.name || run.id.slice(0, 8)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map(row => (
              <tr
                key={`${row.kind}:${row.key}`}
                className={row.differs ? 'jp-mlops-differs' : undefined}
                data-testid="mlops-compare-row"
                data-key={`${row.kind === 'param' ? 'params' : 'metrics'}.${row.key}`}
                data-differs={row.differs ? 'true' : 'false'}
              >
                <th scope="row" className="jp-mlops-code">
                  {row.kind === 'param' ? 'params.' : 'metrics.'}
                  {row.key}
                </th>
                {row.values.map((value, index) => (
                  <td
                    key={runs[index].id}
                    className={`jp-mlops-col-${row.kind}`}
                  >
                    {value}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {rows.length === 0 && (
        <p className="jp-mlops-loading">
          These runs have no params or metrics.
        </p>
      )}
      {shownParam && shownMetric && (
        <>
          <h4 className="jp-mlops-subtitle">Metric against param</h4>
          <div className="jp-mlops-actions">
            <select
              className="jp-mlops-select"
              aria-label="Metric (vertical axis)"
              value={shownMetric}
              onChange={event => setMetric(event.target.value)}
              data-testid="mlops-compare-metric"
            >
              {metricKeys.map(key => (
                <option key={key} value={key}>
                  {key}
                </option>
              ))}
            </select>
            <select
              className="jp-mlops-select"
              aria-label="Param (horizontal axis)"
              value={shownParam}
              onChange={event => setParam(event.target.value)}
              data-testid="mlops-compare-param"
            >
              {paramKeys.map(key => (
                <option key={key} value={key}>
                  {key}
                </option>
              ))}
            </select>
          </div>
          <ParamChart runs={runs} param={shownParam} metric={shownMetric} />
        </>
      )}
    </section>
  );
}
