import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import {
  downloadArtifact,
  fetchMetricHistory,
  fetchModelLineage,
  fetchModelVersions,
  fetchRun,
  fetchStatus,
  listExperiments,
  listBatches,
  listModels,
  promoteModelVersion,
  searchRuns,
  setTrackingUri,
  stopBatch
} from './api';
import { diffPlugin, DiffCommandIDs } from './diff';
import { mlopsIcon } from './icons';
import { KernelTrackingSync } from './kernelTracking';
import { parseSettings } from './model';
import { NotebookCommManager } from './notebookComm';
import { notebookActionsPlugin, NotebookCommandIDs } from './notebookActions';
import { snapshotPlugin, SnapshotCommandIDs } from './snapshot';
import { MlopsSidebar } from './widgets/StatusPanel';

/**
 * The plugin id; also names the settings schema (`schema/plugin.json`).
 */
const PLUGIN_ID = 'jupyter-mlops:plugin';

/**
 * Id of the sidebar widget (used by the layout restorer too).
 */
export const SIDEBAR_ID = 'jupyter-mlops-sidebar';

/**
 * Command ids.
 */
export namespace CommandIDs {
  export const openSidebar = 'jupyter-mlops:open-sidebar';
}

/**
 * Ask which alias to point at a model version; null when cancelled or empty.
 */
async function askPromotionAlias(
  name: string,
  version: string
): Promise<string | null> {
  const result = await InputDialog.getText({
    title: `Promote ${name} version ${version}`,
    label: 'Alias (the project policy may require an approved review)',
    placeholder: 'champion',
    okLabel: 'Promote'
  });
  const alias = result.value?.trim();
  if (!result.button.accept || !alias) {
    return null;
  }
  return alias;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'MLOps sidebar: tracking server status, runs and comparisons.',
  autoStart: true,
  optional: [
    ILayoutRestorer,
    ICommandPalette,
    ISettingRegistry,
    INotebookTracker
  ],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    notebooks: INotebookTracker | null
  ): void => {
    const diffAgainst = async (runId: string): Promise<void> => {
      const result = await InputDialog.getText({
        title: 'Diff against…',
        label: `Compare run ${runId.slice(0, 8)} with: run id, models:/NAME/VERSION, models:/NAME@ALIAS, notebook path or git:REV:PATH`,
        placeholder: 'run id or reference',
        okLabel: 'Diff'
      });
      const other = result.value?.trim();
      if (!result.button.accept || !other) {
        return;
      }
      await app.commands.execute(DiffCommandIDs.openDiff, {
        a: other,
        b: runId
      });
    };
    const panel = new MlopsSidebar({
      fetchStatus: () => fetchStatus(),
      runsApi: {
        listExperiments: () => listExperiments(),
        searchRuns: query => searchRuns(query),
        fetchRun: runId => fetchRun(runId),
        fetchMetricHistory: (runId, key) => fetchMetricHistory(runId, key),
        diffAgainst,
        openDiff: async (a, b) => {
          await app.commands.execute(DiffCommandIDs.openDiff, { a, b });
        },
        downloadArtifact: (runId, path) => downloadArtifact(runId, path),
        openNotebook: async (runId, path, label) => {
          await app.commands.execute(SnapshotCommandIDs.open, {
            runId,
            path,
            label
          });
        }
      },
      modelsApi: {
        listModels: () => listModels(),
        fetchVersions: name => fetchModelVersions(name),
        fetchLineage: (name, version) => fetchModelLineage(name, version),
        promote: (name, version, alias, note) =>
          promoteModelVersion(name, version, alias, note),
        askAlias: askPromotionAlias,
        openDiff: async (a, b) => {
          await app.commands.execute(DiffCommandIDs.openDiff, { a, b });
        },
        reviewCandidate: async candidate => {
          await app.commands.execute(DiffCommandIDs.reviewCandidate, {
            candidate
          });
        }
      },
      batchesApi: {
        listBatches: () => listBatches(),
        stopBatch: id => stopBatch(id)
      }
    });
    panel.id = SIDEBAR_ID;
    panel.title.icon = mlopsIcon;
    panel.title.caption = 'MLOps';
    panel.title.label = '';

    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, SIDEBAR_ID);
    }

    app.commands.addCommand(CommandIDs.openSidebar, {
      label: 'Open MLOps panel',
      caption: 'Show the MLOps sidebar',
      execute: () => {
        app.shell.activateById(panel.id);
      }
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.openSidebar, category: 'MLOps' });
    }

    app.commands.addCommand(NotebookCommandIDs.showBatches, {
      label: 'Show batches in the MLOps panel',
      execute: () => {
        app.shell.activateById(panel.id);
        panel.refreshBatches();
      }
    });

    if (settingRegistry) {
      // Lives as long as the application, like the settings it follows.
      const kernels = notebooks
        ? new KernelTrackingSync(notebooks, () => fetchStatus())
        : null;
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = (): void => {
            const parsed = parseSettings(settings.composite);
            // Before the panel re-renders: its requests go to the chosen store.
            setTrackingUri(parsed.trackingUri);
            panel.settings = parsed;
            // And the notebooks' kernels, before their next tracked cell.
            void kernels?.settingChanged(parsed.trackingUri);
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error('jupyter-mlops: failed to load settings.', reason);
        });
    }
  }
};

/**
 * Sends the live notebook model to the kernel before a tracked cell runs, so
 * snapshots include unsaved edits (see `notebookComm.ts`).
 */
const liveNotebookPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlops:live-notebook',
  description:
    'Live notebook for tracked runs: snapshots include edits that were not saved.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker): void => {
    // Lives as long as the application: there is no plugin deactivation to undo it.
    new NotebookCommManager(tracker);
  }
};

export default [
  plugin,
  liveNotebookPlugin,
  diffPlugin,
  notebookActionsPlugin,
  snapshotPlugin
];
