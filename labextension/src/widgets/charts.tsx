import * as React from 'react';

import { IMetricPoint, IRunSummary } from '../model';
import { formatNumber } from './runsCommon';

const CHART_WIDTH = 240;
const CHART_HEIGHT = 80;
const CHART_PAD = 4;

/**
 * A metric's values over its steps as an SVG polyline (a dot when there is one).
 */
export function MetricChart(props: {
  metric: string;
  points: IMetricPoint[];
}): React.JSX.Element {
  const points = props.points.filter(
    (p): p is IMetricPoint & { value: number } => p.value !== null
  );
  const steps = points.map(p => p.step);
  const values = points.map(p => p.value);
  const minX = Math.min(...steps);
  const maxX = Math.max(...steps);
  const minY = Math.min(...values);
  const maxY = Math.max(...values);
  const x = (step: number): number =>
    CHART_PAD +
    (maxX === minX
      ? (CHART_WIDTH - 2 * CHART_PAD) / 2
      : ((step - minX) / (maxX - minX)) * (CHART_WIDTH - 2 * CHART_PAD));
  const y = (value: number): number =>
    CHART_HEIGHT -
    CHART_PAD -
    (maxY === minY
      ? (CHART_HEIGHT - 2 * CHART_PAD) / 2
      : ((value - minY) / (maxY - minY)) * (CHART_HEIGHT - 2 * CHART_PAD));
  const label =
    points.length === 0
      ? `${props.metric}: no finite values`
      : `${props.metric} over ${points.length} step(s), from ${formatNumber(
          values[0]
        )} to ${formatNumber(values[values.length - 1])}`;
  return (
    <svg
      className="jp-mlops-chart"
      width={CHART_WIDTH}
      height={CHART_HEIGHT}
      viewBox={`0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`}
      role="img"
      aria-label={label}
      data-testid="mlops-metric-chart"
      data-metric={props.metric}
      data-points={points.length}
    >
      <title>{label}</title>
      <rect
        className="jp-mlops-chart-frame"
        x={0.5}
        y={0.5}
        width={CHART_WIDTH - 1}
        height={CHART_HEIGHT - 1}
      />
      {points.length > 1 && (
        <polyline
          className="jp-mlops-chart-line"
          points={points.map(p => `${x(p.step)},${y(p.value)}`).join(' ')}
        />
      )}
      {points.map(p => (
        <circle
          key={`${p.step}-${p.value}`}
          className="jp-mlops-chart-dot"
          cx={x(p.step)}
          cy={y(p.value)}
          r={2}
        >
          <title>{`step ${p.step}: ${formatNumber(p.value)}`}</title>
        </circle>
      ))}
    </svg>
  );
}

/**
 * A metric against a param across runs, one dot per run: a numeric axis when
 * every value is a number, else the values in sorted order.
 */
export function ParamChart(props: {
  runs: IRunSummary[];
  param: string;
  metric: string;
}): React.JSX.Element {
  const { runs, param, metric } = props;
  const measured = runs.filter(
    run =>
      run.params[param] !== undefined && typeof run.metrics[metric] === 'number'
  );
  const texts = measured.map(run => run.params[param]);
  const numeric = texts.every(
    text => text.trim() !== '' && Number.isFinite(Number(text))
  );
  const categories = [...new Set(texts)].sort();
  const xs = texts.map(text =>
    numeric ? Number(text) : categories.indexOf(text)
  );
  const ys = measured.map(run => run.metrics[metric] as number);
  const scale = (
    value: number,
    values: number[],
    length: number,
    flip: boolean
  ): number => {
    const min = Math.min(...values);
    const max = Math.max(...values);
    const fraction = max === min ? 0.5 : (value - min) / (max - min);
    const inner = length - 2 * CHART_PAD;
    return CHART_PAD + (flip ? 1 - fraction : fraction) * inner;
  };
  const label = `${metric} against ${param} over ${measured.length} run(s)`;
  return (
    <svg
      className="jp-mlops-chart"
      width={CHART_WIDTH}
      height={CHART_HEIGHT}
      viewBox={`0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`}
      role="img"
      aria-label={label}
      data-testid="mlops-compare-chart"
      data-points={measured.length}
    >
      <title>{label}</title>
      <rect
        className="jp-mlops-chart-frame"
        x={0.5}
        y={0.5}
        width={CHART_WIDTH - 1}
        height={CHART_HEIGHT - 1}
      />
      {measured.map((run, index) => (
        <circle
          key={run.id}
          className="jp-mlops-chart-dot"
          cx={scale(xs[index], xs, CHART_WIDTH, false)}
          cy={scale(ys[index], ys, CHART_HEIGHT, true)}
          r={3}
          data-run-id={run.id}
        >
          <title>{`${run.name || run.id}: ${param} = ${texts[index]}, ${metric} = ${formatNumber(ys[index])}`}</title>
        </circle>
      ))}
    </svg>
  );
}
