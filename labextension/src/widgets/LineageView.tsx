import * as React from 'react';

import { ILineage } from '../model';

function short(value: string | null | undefined, width = 12): string {
  if (!value) {
    return '—';
  }
  return value.length > width ? `${value.slice(0, width)}…` : value;
}

/**
 * The chain model → run → notebook snapshot → params → data → environment.
 */
export function LineageView(props: {
  lineage: ILineage;
  onClose: () => void;
}): React.JSX.Element {
  const { lineage, onClose } = props;
  const params = lineage.params.values
    ? Object.entries(lineage.params.values)
        .map(([key, value]) => `${key}=${value}`)
        .join(', ')
    : '';
  const promotions = Object.entries(lineage.promotions);
  return (
    <div
      className="jp-mlops-lineage"
      data-testid="mlops-lineage"
      aria-label={`Lineage of ${lineage.model.uri}`}
    >
      <header className="jp-mlops-header">
        <h4 className="jp-mlops-subtitle">Lineage of {lineage.model.uri}</h4>
        <button
          type="button"
          className="jp-mlops-button"
          aria-label="Close lineage"
          onClick={onClose}
        >
          Close
        </button>
      </header>
      <dl className="jp-mlops-fields">
        <dt>Model</dt>
        <dd data-testid="mlops-lineage-model">
          {lineage.model.uri}
          {lineage.model.aliases.length > 0 &&
            ` (aliases: ${lineage.model.aliases.join(', ')})`}
          {lineage.model.flavor && `, ${lineage.model.flavor}`}
        </dd>
        <dt>Run</dt>
        <dd className="jp-mlops-code" data-testid="mlops-lineage-run">
          {lineage.run.id ?? '—'}
          {lineage.run.experiment && ` in '${lineage.run.experiment}'`}
          {lineage.run.status && `, ${lineage.run.status}`}
          {lineage.run.problem && ` (${lineage.run.problem})`}
        </dd>
        <dt>Notebook</dt>
        <dd className="jp-mlops-code" data-testid="mlops-lineage-notebook">
          {lineage.notebook.path ?? '—'}
          {lineage.notebook.snapshot &&
            `, snapshot sha256 ${short(lineage.notebook.snapshot)}`}
        </dd>
        <dt>Params</dt>
        <dd data-testid="mlops-lineage-params">
          {lineage.params.hash
            ? `sha256 ${short(lineage.params.hash)}${params ? `: ${params}` : ''}`
            : '—'}
        </dd>
        <dt>Data</dt>
        <dd data-testid="mlops-lineage-data">
          {lineage.data.length === 0
            ? 'none recorded'
            : lineage.data
                .map(
                  d =>
                    `${d.name ?? '?'}: ${short(d.digest)}${
                      typeof d.rows === 'number' ? `, ${d.rows} rows` : ''
                    }`
                )
                .join('; ')}
        </dd>
        <dt>Environment</dt>
        <dd data-testid="mlops-lineage-environment">
          {lineage.environment.hash
            ? `sha256 ${short(lineage.environment.hash)}`
            : '—'}
          {lineage.environment.git_commit &&
            `, git ${short(lineage.environment.git_commit)}`}
          {lineage.environment.git_dirty ? ' (dirty)' : ''}
        </dd>
        <dt>Review</dt>
        <dd data-testid="mlops-lineage-review">
          {lineage.review
            ? `approved, review ${lineage.review.id} (on the ${lineage.review.on})`
            : 'no approved review'}
        </dd>
        <dt>Reproduced</dt>
        <dd>{lineage.reproduced ?? 'never'}</dd>
        <dt>Promoted</dt>
        <dd data-testid="mlops-lineage-promotions">
          {promotions.length === 0
            ? 'never'
            : promotions
                .map(
                  ([alias, p]) =>
                    `${alias} by ${p.by} at ${p.at}` +
                    (p.review_id ? `, review ${p.review_id}` : '')
                )
                .join('; ')}
        </dd>
      </dl>
    </div>
  );
}
