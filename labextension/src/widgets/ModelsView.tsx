import * as React from 'react';

import {
  ILineage,
  IModelList,
  IModelVersion,
  IModelVersionList,
  IPromotion
} from '../model';
import { LineageView } from './LineageView';
import { RunDetailsView } from './RunDetailsView';
import { errorText, formatTime, IRunsApi } from './runsCommon';

/**
 * The alias a version is diffed against by "Diff against champion".
 */
export const CHAMPION_ALIAS = 'champion';

/**
 * What the models section needs from the server and the application.
 */
export interface IModelsApi {
  listModels: () => Promise<IModelList>;
  fetchVersions: (name: string) => Promise<IModelVersionList>;
  fetchLineage: (name: string, version: string) => Promise<ILineage>;
  promote: (
    name: string,
    version: string,
    alias: string,
    note?: string
  ) => Promise<IPromotion>;
  /** Ask for the alias to point at the version; null when cancelled. */
  askAlias: (name: string, version: string) => Promise<string | null>;
  /** Open the notebook diff from reference `a` to `b`. */
  openDiff: (a: string, b: string) => Promise<void>;
  /** Open a new review of `candidate` (a `models:/NAME/VERSION`). */
  reviewCandidate: (candidate: string) => Promise<void>;
}

/**
 * Props of {@link ModelsView}.
 */
export interface IModelsViewProps {
  api: IModelsApi;
  /** The run browser's calls, to show a version's run; null: the id only. */
  runsApi: IRunsApi | null;
  /** Whether the panel is shown; the models load when it first is. */
  active: boolean;
}

interface IMessage {
  text: string;
  kind: 'ok' | 'error';
}

const REVIEW_LABELS: Record<string, string> = {
  approved: 'approved',
  changes_requested: 'changes requested',
  open: 'in review'
};

function ReviewBadge(props: { version: IModelVersion }): React.JSX.Element {
  const review = props.version.review;
  if (review === null) {
    return (
      <span className="jp-mlops-badge" data-testid="mlops-version-review-state">
        not reviewed
      </span>
    );
  }
  const label = REVIEW_LABELS[review.state] ?? review.state;
  const title =
    `Review ${review.id ?? '(no id)'}` +
    (review.on === 'run' ? ', on the run that produced it' : '');
  return (
    <span
      className={`jp-mlops-badge jp-mlops-version-review-${review.state}`}
      data-testid="mlops-version-review-state"
      data-state={review.state}
      title={title}
    >
      {label}
      {review.on === 'run' ? ' (run)' : ''}
    </span>
  );
}

/**
 * The models section: registered models, their versions, lineage, actions.
 */
export function ModelsView(props: IModelsViewProps): React.JSX.Element {
  const { api, runsApi, active } = props;
  const [models, setModels] = React.useState<IModelList | null>(null);
  const [selected, setSelected] = React.useState<string | null>(null);
  const [versions, setVersions] = React.useState<IModelVersionList | null>(
    null
  );
  const [lineage, setLineage] = React.useState<ILineage | null>(null);
  const [runId, setRunId] = React.useState<string | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [message, setMessage] = React.useState<IMessage | null>(null);
  const [loading, setLoading] = React.useState<boolean>(false);
  const loadedOnce = React.useRef(false);
  const mounted = React.useRef(true);

  React.useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  const loadModels = React.useCallback(async (): Promise<void> => {
    setLoading(true);
    try {
      const answer = await api.listModels();
      if (mounted.current) {
        setModels(answer);
        setError(null);
      }
    } catch (reason) {
      if (mounted.current) {
        setError(errorText(reason));
      }
    } finally {
      if (mounted.current) {
        setLoading(false);
      }
    }
  }, [api]);

  const loadVersions = React.useCallback(
    async (name: string): Promise<void> => {
      try {
        const answer = await api.fetchVersions(name);
        if (mounted.current) {
          setVersions(answer);
          setError(null);
        }
      } catch (reason) {
        if (mounted.current) {
          setError(errorText(reason));
        }
      }
    },
    [api]
  );

  React.useEffect(() => {
    if (active && !loadedOnce.current) {
      loadedOnce.current = true;
      void loadModels();
    }
  }, [active, loadModels]);

  const onRefresh = (): void => {
    void loadModels();
    if (selected !== null) {
      void loadVersions(selected);
    }
  };

  const onSelect = (name: string): void => {
    setSelected(name);
    setVersions(null);
    setLineage(null);
    setMessage(null);
    void loadVersions(name);
  };

  const onLineage = async (version: IModelVersion): Promise<void> => {
    if (selected === null) {
      return;
    }
    try {
      const answer = await api.fetchLineage(selected, version.version);
      if (mounted.current) {
        setLineage(answer);
      }
    } catch (reason) {
      setMessage({ text: errorText(reason), kind: 'error' });
    }
  };

  const onPromote = async (version: IModelVersion): Promise<void> => {
    if (selected === null) {
      return;
    }
    const name = selected;
    const alias = await api.askAlias(name, version.version);
    if (alias === null) {
      return;
    }
    try {
      const promotion = await api.promote(name, version.version, alias);
      setMessage({
        text: `${promotion.uri} now points at version ${promotion.version}`,
        kind: 'ok'
      });
      setLineage(null);
      await Promise.all([loadVersions(name), loadModels()]);
    } catch (reason) {
      setMessage({ text: errorText(reason), kind: 'error' });
    }
  };

  const onDiffChampion = (version: IModelVersion): void => {
    if (selected === null) {
      return;
    }
    void api.openDiff(
      `models:/${selected}@${CHAMPION_ALIAS}`,
      `models:/${selected}/${version.version}`
    );
  };

  const onReview = (version: IModelVersion): void => {
    void api.reviewCandidate(version.uri);
  };

  if (runId !== null && runsApi !== null) {
    return (
      <RunDetailsView
        api={runsApi}
        runId={runId}
        onBack={() => setRunId(null)}
      />
    );
  }

  const champion = versions?.aliases[CHAMPION_ALIAS] ?? null;
  const list = models?.models ?? [];

  return (
    <section
      className="jp-mlops-models"
      aria-labelledby="jp-mlops-models-title"
      data-testid="mlops-models"
    >
      <header className="jp-mlops-header">
        <h3 id="jp-mlops-models-title" className="jp-mlops-subtitle">
          Models
        </h3>
        <button
          type="button"
          className="jp-mlops-button"
          aria-label="Refresh models"
          onClick={onRefresh}
          aria-busy={loading}
        >
          Refresh
        </button>
      </header>

      {error !== null && (
        <p
          className="jp-mlops-error"
          role="alert"
          data-testid="mlops-models-error"
        >
          {error}
        </p>
      )}

      {models !== null && list.length === 0 && (
        <p className="jp-mlops-loading" data-testid="mlops-models-empty">
          No registered models yet.
        </p>
      )}

      {list.length > 0 && (
        <ul className="jp-mlops-model-list" aria-label="Registered models">
          {list.map(model => (
            <li key={model.name}>
              <button
                type="button"
                className={
                  model.name === selected
                    ? 'jp-mlops-model-item jp-mod-selected'
                    : 'jp-mlops-model-item'
                }
                data-testid="mlops-model-item"
                data-model={model.name}
                aria-pressed={model.name === selected}
                onClick={() => onSelect(model.name)}
              >
                <span className="jp-mlops-model-name">{model.name}</span>
                <span className="jp-mlops-detail">
                  {model.latest_version ? ` v${model.latest_version}` : ''}
                </span>
                {Object.entries(model.aliases)
                  .sort(([a], [b]) => a.localeCompare(b))
                  .map(([alias, version]) => (
                    <span
                      key={alias}
                      className="jp-mlops-badge"
                      data-testid="mlops-model-alias"
                    >
                      {alias}→{version}
                    </span>
                  ))}
              </button>
            </li>
          ))}
        </ul>
      )}

      {message !== null && (
        <p
          className={
            message.kind === 'error' ? 'jp-mlops-error' : 'jp-mlops-ok'
          }
          role={message.kind === 'error' ? 'alert' : 'status'}
          data-testid="mlops-model-message"
        >
          {message.text}
        </p>
      )}

      {selected !== null && versions !== null && (
        <div className="jp-mlops-table-wrap">
          <table
            className="jp-mlops-table"
            data-testid="mlops-versions-table"
            aria-label={`Versions of ${selected}`}
          >
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Aliases</th>
                <th scope="col">Review</th>
                <th scope="col">Run</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {versions.versions.map(version => (
                <tr
                  key={version.version}
                  data-testid="mlops-version-row"
                  data-version={version.version}
                >
                  <td>{version.version}</td>
                  <td data-testid="mlops-version-aliases">
                    {version.aliases.join(', ')}
                  </td>
                  <td>
                    <ReviewBadge version={version} />
                  </td>
                  <td className="jp-mlops-code">
                    {version.run_id !== null &&
                    version.run_exists &&
                    runsApi !== null ? (
                      <button
                        type="button"
                        className="jp-mlops-link"
                        data-testid="mlops-version-run"
                        title={`Open run ${version.run_id}`}
                        onClick={() => setRunId(version.run_id)}
                      >
                        {version.run_id.slice(0, 8)}
                      </button>
                    ) : (
                      <span data-testid="mlops-version-run">
                        {version.run_id ? version.run_id.slice(0, 8) : '—'}
                      </span>
                    )}
                  </td>
                  <td>{formatTime(version.created)}</td>
                  <td className="jp-mlops-version-actions">
                    <button
                      type="button"
                      className="jp-mlops-button"
                      data-testid="mlops-version-lineage"
                      aria-label={`Lineage of version ${version.version}`}
                      onClick={() => void onLineage(version)}
                    >
                      Lineage
                    </button>
                    <button
                      type="button"
                      className="jp-mlops-button"
                      data-testid="mlops-version-diff-champion"
                      aria-label={`Diff version ${version.version} against champion`}
                      disabled={
                        champion === null || champion === version.version
                      }
                      title={
                        champion === null
                          ? 'No version is the champion'
                          : `Diff against version ${champion} (champion)`
                      }
                      onClick={() => onDiffChampion(version)}
                    >
                      Diff vs champion
                    </button>
                    <button
                      type="button"
                      className="jp-mlops-button"
                      data-testid="mlops-version-review"
                      aria-label={`Review version ${version.version}`}
                      onClick={() => onReview(version)}
                    >
                      Review
                    </button>
                    <button
                      type="button"
                      className="jp-mlops-button"
                      data-testid="mlops-version-promote"
                      aria-label={`Promote version ${version.version}`}
                      onClick={() => void onPromote(version)}
                    >
                      Promote…
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      {lineage !== null && (
        <LineageView lineage={lineage} onClose={() => setLineage(null)} />
      )}
    </section>
  );
}
