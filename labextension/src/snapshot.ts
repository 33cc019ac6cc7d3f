/**
 * The read-only notebook tab of a run's snapshot, and the command that opens it.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ReadonlyPartialJSONObject, UUID } from '@lumino/coreutils';

import { SnapshotView } from './widgets/SnapshotView';

/**
 * Command ids of the snapshot tab.
 */
export namespace SnapshotCommandIDs {
  /** Open a notebook artifact read-only; args `{runId, path, label?}`. */
  export const open = 'jupyter-mlops:open-notebook-snapshot';
}

type SnapshotTab = MainAreaWidget<SnapshotView>;

function stringArg(args: ReadonlyPartialJSONObject, name: string): string {
  const value = args[name];
  return typeof value === 'string' ? value.trim() : '';
}

export const snapshotPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlops:snapshot',
  description:
    "A run's notebook snapshot in a read-only tab: sources as text, outputs rendered untrusted.",
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null
  ): void => {
    const { commands, shell } = app;
    const tracker = new WidgetTracker<SnapshotTab>({
      namespace: 'jupyter-mlops-snapshot'
    });

    commands.addCommand(SnapshotCommandIDs.open, {
      label: 'Open notebook snapshot',
      caption: "Show a run's notebook snapshot, read-only",
      execute: args => {
        const runId = stringArg(args, 'runId');
        const path = stringArg(args, 'path');
        if (!runId || !path) {
          throw new Error(
            `${SnapshotCommandIDs.open} needs a runId and a path`
          );
        }
        const label = stringArg(args, 'label') || runId.slice(0, 8);
        const existing = tracker.find(
          w => w.content.runId === runId && w.content.path === path
        );
        if (existing) {
          shell.activateById(existing.id);
          return existing;
        }
        const content = new SnapshotView({ runId, path, label, rendermime });
        const tab = new MainAreaWidget({ content });
        tab.id = `jupyter-mlops-snapshot-${UUID.uuid4()}`;
        tab.addClass('jp-mlops-snapshot-tab');
        tab.title.label = `Snapshot: ${label}`;
        tab.title.caption = `Notebook of run ${runId} (read-only)\n${path}`;
        tab.title.closable = true;
        void tracker.add(tab);
        shell.add(tab, 'main');
        shell.activateById(tab.id);
        return tab;
      }
    });

    if (restorer) {
      void restorer.restore(tracker, {
        command: SnapshotCommandIDs.open,
        args: tab => ({
          runId: tab.content.runId,
          path: tab.content.path,
          label: tab.content.label
        }),
        name: tab => JSON.stringify([tab.content.runId, tab.content.path])
      });
    }
  }
};
