import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { fetchStatus } from './api';
import { diffPlugin } from './diff';
import { mlopsIcon } from './icons';
import { parseSettings } from './model';
import { NotebookCommManager } from './notebookComm';
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

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'MLOps sidebar: tracking server status, runs and comparisons.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null
  ): void => {
    const panel = new MlopsSidebar({ fetchStatus: () => fetchStatus() });
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

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = (): void => {
            panel.settings = parseSettings(settings.composite);
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

export default [plugin, liveNotebookPlugin, diffPlugin];
