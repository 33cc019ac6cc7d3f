import * as React from 'react';

import { IBatchJob, IBatchList } from '../model';
import { errorText } from './runsCommon';

/**
 * What the batches section needs from the server.
 */
export interface IBatchesApi {
  listBatches: () => Promise<IBatchList>;
  stopBatch: (id: string) => Promise<IBatchJob>;
}

/**
 * Props of {@link BatchesView}.
 */
export interface IBatchesViewProps {
  api: IBatchesApi;
  /** Whether the panel is shown; polling pauses while hidden. */
  active: boolean;
  /** Changes when a batch was started here, to load the list again. */
  revision: number;
  /** Seconds between polls while a batch runs. */
  pollSeconds?: number;
}

function gridText(job: IBatchJob): string {
  return Object.entries(job.grid)
    .map(([name, values]) => `${name} = ${values.map(String).join(', ')}`)
    .join('; ');
}

/**
 * The batches section: jobs started from this server, their progress, Stop.
 *
 * Hidden until the server has started a batch.
 */
export function BatchesView(props: IBatchesViewProps): React.JSX.Element {
  const { api, active, revision, pollSeconds = 2 } = props;
  const [jobs, setJobs] = React.useState<IBatchJob[]>([]);
  const [error, setError] = React.useState<string | null>(null);
  const mounted = React.useRef(true);

  React.useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  const load = React.useCallback(async (): Promise<void> => {
    try {
      const answer = await api.listBatches();
      if (mounted.current) {
        setJobs(answer.batches);
        setError(null);
      }
    } catch (reason) {
      if (mounted.current) {
        setError(errorText(reason));
      }
    }
  }, [api]);

  React.useEffect(() => {
    if (active) {
      void load();
    }
  }, [active, revision, load]);

  const running = jobs.some(job => job.state === 'running');
  React.useEffect(() => {
    if (!active || !running) {
      return;
    }
    const timer = window.setInterval(() => {
      void load();
    }, pollSeconds * 1000);
    return () => window.clearInterval(timer);
  }, [active, running, pollSeconds, load]);

  const onStop = async (job: IBatchJob): Promise<void> => {
    try {
      await api.stopBatch(job.id);
    } catch (reason) {
      setError(errorText(reason));
    }
    await load();
  };

  if (jobs.length === 0 && error === null) {
    return <></>;
  }

  return (
    <section
      className="jp-mlops-batches"
      aria-labelledby="jp-mlops-batches-title"
      data-testid="mlops-batches"
    >
      <header className="jp-mlops-header">
        <h3 id="jp-mlops-batches-title" className="jp-mlops-subtitle">
          Batches
        </h3>
      </header>
      {error !== null && (
        <p className="jp-mlops-error" role="alert">
          {error}
        </p>
      )}
      <ul className="jp-mlops-batch-list">
        {jobs.map(job => (
          <li
            key={job.id}
            className="jp-mlops-batch"
            data-testid="mlops-batch"
            data-batch-id={job.id}
            data-state={job.state}
          >
            <div className="jp-mlops-batch-head">
              <span className="jp-mlops-code">{job.notebook}</span>
              <span
                className={`jp-mlops-badge jp-mlops-batch-${job.state}`}
                data-testid="mlops-batch-state"
              >
                {job.state}
              </span>
            </div>
            <div className="jp-mlops-detail">{gridText(job)}</div>
            <progress
              max={job.points}
              value={job.done + job.failed}
              aria-label={`Progress of batch ${job.id}`}
            />
            <span data-testid="mlops-batch-progress">
              {job.done}/{job.points} done
              {job.failed > 0 ? `, ${job.failed} failed` : ''}
            </span>
            {job.state === 'running' && (
              <button
                type="button"
                className="jp-mlops-button"
                data-testid="mlops-batch-stop"
                aria-label={`Stop batch ${job.id}`}
                onClick={() => void onStop(job)}
              >
                Stop
              </button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
