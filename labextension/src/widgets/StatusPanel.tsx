import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { MlopsApiError } from '../api';
import {
  DEFAULT_SETTINGS,
  IMlopsSettings,
  IStatusResponse,
  TrackingSource
} from '../model';
import { BatchesView, IBatchesApi } from './BatchesView';
import { IModelsApi, ModelsView } from './ModelsView';
import { RunsView } from './RunsView';
import { IRunsApi } from './runsCommon';

/**
 * Props of {@link StatusView}.
 */
export interface IStatusViewProps {
  /** Loads the server status. */
  fetchStatus: () => Promise<IStatusResponse>;
  /** Automatic refresh period in seconds; 0 disables it. */
  refreshInterval: number;
  /** Whether the panel is shown; automatic refresh pauses while hidden. */
  active: boolean;
}

const SOURCE_LABELS: Record<TrackingSource, string> = {
  argument: 'server argument',
  setting: 'JupyterLab setting',
  environment: 'environment variable',
  pyproject: 'pyproject.toml',
  default: 'default'
};

interface IErrorState {
  message: string;
  hint: string | null;
}

function describeError(error: unknown): IErrorState {
  if (error instanceof MlopsApiError) {
    return { message: error.message, hint: error.hint };
  }
  if (error instanceof Error) {
    return { message: error.message, hint: null };
  }
  return { message: String(error), hint: null };
}

/**
 * Status of the jupyter-mlops server: version, tracking location and store.
 */
export function StatusView(props: IStatusViewProps): React.JSX.Element {
  const { fetchStatus, refreshInterval, active } = props;
  const [status, setStatus] = React.useState<IStatusResponse | null>(null);
  const [error, setError] = React.useState<IErrorState | null>(null);
  const [loading, setLoading] = React.useState<boolean>(true);
  // Only the answer of the latest request is shown.
  const requestId = React.useRef(0);
  const mounted = React.useRef(true);

  React.useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  const refresh = React.useCallback(async (): Promise<void> => {
    const id = ++requestId.current;
    setLoading(true);
    try {
      const answer = await fetchStatus();
      if (mounted.current && id === requestId.current) {
        setStatus(answer);
        setError(null);
      }
    } catch (reason) {
      if (mounted.current && id === requestId.current) {
        setError(describeError(reason));
      }
    } finally {
      if (mounted.current && id === requestId.current) {
        setLoading(false);
      }
    }
  }, [fetchStatus]);

  // Load once, then again whenever the panel is shown.
  React.useEffect(() => {
    if (active) {
      void refresh();
    }
  }, [active, refresh]);

  // Automatic refresh while the panel is shown.
  React.useEffect(() => {
    if (!active || refreshInterval <= 0) {
      return;
    }
    const timer = window.setInterval(() => {
      if (document.visibilityState !== 'hidden') {
        void refresh();
      }
    }, refreshInterval * 1000);
    return () => window.clearInterval(timer);
  }, [active, refreshInterval, refresh]);

  const onRefresh = (): void => {
    void refresh();
  };

  return (
    <section className="jp-mlops-status" aria-labelledby="jp-mlops-title">
      <header className="jp-mlops-header">
        <h2 id="jp-mlops-title" className="jp-mlops-title">
          MLOps
        </h2>
        <button
          type="button"
          className="jp-mlops-button"
          aria-label="Refresh status"
          title="Refresh status"
          onClick={onRefresh}
          aria-busy={loading}
        >
          Refresh
        </button>
      </header>

      {error !== null && (
        <div className="jp-mlops-error-box">
          <p className="jp-mlops-error" role="alert" data-testid="mlops-error">
            {error.message}
          </p>
          {error.hint && <p className="jp-mlops-hint">{error.hint}</p>}
          <button type="button" className="jp-mlops-button" onClick={onRefresh}>
            Retry
          </button>
        </div>
      )}

      {status === null && error === null && loading && (
        <p className="jp-mlops-loading" role="status">
          Loading…
        </p>
      )}

      {status !== null && (
        <div aria-busy={loading}>
          <dl className="jp-mlops-fields">
            <dt>Version</dt>
            <dd data-testid="mlops-version">{status.version}</dd>

            <dt>Tracking URI</dt>
            <dd data-testid="mlops-tracking-uri" className="jp-mlops-code">
              {status.tracking.uri}
            </dd>

            <dt>Chosen by</dt>
            <dd data-testid="mlops-tracking-source">
              <span className="jp-mlops-badge">
                {SOURCE_LABELS[status.tracking.source] ??
                  status.tracking.source}
              </span>
              {status.tracking.detail && (
                <span className="jp-mlops-detail">
                  {' — '}
                  {status.tracking.detail}
                </span>
              )}
            </dd>

            <dt>Artifacts</dt>
            <dd className="jp-mlops-code">
              {status.tracking.artifact_uri ?? 'chosen by the tracking store'}
            </dd>

            <dt>Project root</dt>
            <dd className="jp-mlops-code">{status.tracking.project_root}</dd>

            <dt>Store</dt>
            <dd>
              <span
                data-testid="mlops-store-status"
                className={
                  status.store.ok
                    ? 'jp-mlops-store jp-mlops-ok'
                    : 'jp-mlops-store jp-mlops-error'
                }
              >
                {status.store.ok ? 'Store answers' : 'Store unreachable'}
                {status.store.message ? `: ${status.store.message}` : ''}
              </span>
              {status.store.kind && (
                <span className="jp-mlops-kind"> ({status.store.kind})</span>
              )}
            </dd>
          </dl>
        </div>
      )}
    </section>
  );
}

/**
 * The MLOps sidebar panel.
 */
export class MlopsSidebar extends ReactWidget {
  constructor(options: MlopsSidebar.IOptions) {
    super();
    this._fetchStatus = options.fetchStatus;
    this._runsApi = options.runsApi ?? null;
    this._modelsApi = options.modelsApi ?? null;
    this._batchesApi = options.batchesApi ?? null;
    this._settings = options.settings ?? { ...DEFAULT_SETTINGS };
    this.addClass('jp-mlops-sidebar');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'MLOps');
  }

  /**
   * Current user settings; setting them re-renders the panel.
   */
  get settings(): IMlopsSettings {
    return this._settings;
  }
  set settings(value: IMlopsSettings) {
    this._settings = value;
    this.update();
  }

  /**
   * Load the batches again (a batch was just started).
   */
  refreshBatches(): void {
    this._batchesRevision += 1;
    this.update();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.update();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.update();
  }

  protected render(): React.JSX.Element {
    // A new tracking location is a new store: each section starts over (key).
    const store = this._settings.trackingUri;
    return (
      <>
        <StatusView
          key={`status:${store}`}
          fetchStatus={this._fetchStatus}
          refreshInterval={this._settings.refreshInterval}
          active={this.isVisible}
        />
        {this._runsApi !== null && (
          <RunsView
            key={`runs:${store}`}
            api={this._runsApi}
            pageSize={this._settings.pageSize}
            refreshInterval={this._settings.refreshInterval}
            active={this.isVisible}
          />
        )}
        {this._batchesApi !== null && (
          <BatchesView
            key={`batches:${store}`}
            api={this._batchesApi}
            active={this.isVisible}
            revision={this._batchesRevision}
          />
        )}
        {this._modelsApi !== null && (
          <ModelsView
            key={`models:${store}`}
            api={this._modelsApi}
            runsApi={this._runsApi}
            active={this.isVisible}
          />
        )}
      </>
    );
  }

  private _fetchStatus: () => Promise<IStatusResponse>;
  private _runsApi: IRunsApi | null;
  private _modelsApi: IModelsApi | null;
  private _batchesApi: IBatchesApi | null;
  private _batchesRevision = 0;
  private _settings: IMlopsSettings;
}

/**
 * A namespace for MlopsSidebar statics.
 */
export namespace MlopsSidebar {
  export interface IOptions {
    fetchStatus: () => Promise<IStatusResponse>;
    /** The runs section's server calls; without it the section is left out. */
    runsApi?: IRunsApi;
    /** The models section's server calls; without it the section is left out. */
    modelsApi?: IModelsApi;
    /** The batches section's server calls; without it the section is left out. */
    batchesApi?: IBatchesApi;
    settings?: IMlopsSettings;
  }
}
