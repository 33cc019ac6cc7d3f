import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  showDialog,
  showErrorMessage,
  ToolbarButton
} from '@jupyterlab/apputils';
import type { DocumentRegistry } from '@jupyterlab/docregistry';
import {
  INotebookModel,
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { Widget } from '@lumino/widgets';

import { MlopsApiError, startBatch } from './api';
import { GridValue, IBatchJob } from './model';

/**
 * Command ids of the notebook actions.
 */
export namespace NotebookCommandIDs {
  /** Insert (when missing) and run the cell that tracks the notebook. */
  export const trackNotebook = 'jupyter-mlops:track-notebook';
  /** Ask for a parameter grid and start `jupyter mlops batch` on the server. */
  export const runAsBatch = 'jupyter-mlops:run-as-batch';
  /** Show a started batch in the sidebar (registered by the sidebar plugin). */
  export const showBatches = 'jupyter-mlops:show-batches';
}

/**
 * The cell "Track this notebook" inserts first.
 */
export const TRACK_SOURCE = '%load_ext jupyter_mlops\n%mlops_track';

/** A `%mlops_track` line magic (not the `%%mlops_track` cell magic). */
const TRACK_LINE = /^[ \t]*%mlops_track\b/m;
/** `name = value  # comment` in a parameters cell. */
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*(?:#.*)?$/;
const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;
const MAX_WORKERS = 8;

/**
 * A parameter of the notebook's `parameters` cell and its value there.
 */
export interface IParameter {
  name: string;
  value: string;
}

/**
 * The index of the first cell holding a `%mlops_track` line, or -1.
 */
function trackCellIndex(panel: NotebookPanel): number {
  const cells = panel.content.model?.sharedModel.cells ?? [];
  return cells.findIndex(
    cell => cell.cell_type === 'code' && TRACK_LINE.test(cell.getSource())
  );
}

/**
 * Insert the tracking cell first when the notebook has none, then run it.
 */
export async function trackNotebook(panel: NotebookPanel): Promise<void> {
  const notebook = panel.content;
  const model = notebook.model;
  if (!model) {
    return;
  }
  let index = trackCellIndex(panel);
  if (index < 0) {
    model.sharedModel.insertCell(0, {
      cell_type: 'code',
      source: TRACK_SOURCE,
      metadata: {}
    });
    index = 0;
  }
  notebook.activeCellIndex = index;
  notebook.deselectAll();
  await NotebookActions.run(notebook, panel.sessionContext);
}

/**
 * The assignments of the cell tagged `parameters` (Papermill's convention).
 */
export function notebookParameters(panel: NotebookPanel): IParameter[] {
  const cells = panel.content.model?.sharedModel.cells ?? [];
  for (const cell of cells) {
    const tags = cell.getMetadata('tags');
    if (
      cell.cell_type !== 'code' ||
      !Array.isArray(tags) ||
      !tags.includes('parameters')
    ) {
      continue;
    }
    const found: IParameter[] = [];
    for (const line of cell.getSource().split('\n')) {
      const match = ASSIGNMENT.exec(line.trim());
      if (match) {
        found.push({ name: match[1], value: match[2] });
      }
    }
    return found;
  }
  return [];
}

/**
 * One grid value from the text a user typed: a number, a boolean or text.
 */
export function parseGridValue(text: string): GridValue {
  const value = text.trim();
  if (NUMBER.test(value)) {
    return Number(value);
  }
  if (value === 'True' || value === 'true') {
    return true;
  }
  if (value === 'False' || value === 'false') {
    return false;
  }
  const quoted = /^(['"])(.*)\1$/.exec(value);
  return quoted ? quoted[2] : value;
}

/**
 * `0.1, 0.2` as a list of grid values; empty text gives an empty list.
 */
export function parseGridValues(text: string): GridValue[] {
  return text
    .split(',')
    .map(part => part.trim())
    .filter(part => part.length > 0)
    .map(parseGridValue);
}

interface IBatchFormValue {
  grid: Record<string, GridValue[]>;
  workers: number;
}

/**
 * The body of the "Run as batch" dialog: a grid field per parameter, workers.
 */
class BatchForm extends Widget implements Dialog.IBodyWidget<IBatchFormValue> {
  constructor(parameters: IParameter[]) {
    super({ node: document.createElement('form') });
    this.addClass('jp-mlops-batch-form');
    this.node.setAttribute('aria-label', 'Parameter grid');
    const intro = document.createElement('p');
    intro.textContent =
      'Values to sweep, separated by commas (e.g. 0.1, 0.2); every combination runs as one tracked run.';
    this.node.appendChild(intro);
    for (const parameter of parameters) {
      this._inputs.set(
        parameter.name,
        this._field(
          parameter.name,
          `${parameter.name} =`,
          parameter.value,
          'mlops-batch-param'
        )
      );
    }
    this._workers = this._field(
      'workers',
      'Workers',
      '2',
      'mlops-batch-workers'
    );
    this._workers.type = 'number';
    this._workers.min = '1';
    this._workers.max = String(MAX_WORKERS);
    this.node.addEventListener('submit', event => event.preventDefault());
  }

  getValue(): IBatchFormValue {
    const grid: Record<string, GridValue[]> = {};
    for (const [name, input] of this._inputs) {
      const values = parseGridValues(input.value);
      if (values.length > 0) {
        grid[name] = values;
      }
    }
    return { grid, workers: Number(this._workers.value) };
  }

  private _field(
    name: string,
    label: string,
    value: string,
    testId: string
  ): HTMLInputElement {
    const row = document.createElement('label');
    row.className = 'jp-mlops-field';
    const text = document.createElement('span');
    text.textContent = label;
    const input = document.createElement('input');
    input.className = 'jp-mlops-input jp-mod-styled';
    input.name = name;
    input.value = value;
    input.dataset.testid = testId;
    input.dataset.param = name;
    row.append(text, input);
    this.node.appendChild(row);
    return input;
  }

  private _inputs = new Map<string, HTMLInputElement>();
  private _workers: HTMLInputElement;
}

/**
 * Ask for the grid and start the batch; null when cancelled or refused.
 */
async function runAsBatch(panel: NotebookPanel): Promise<IBatchJob | null> {
  const parameters = notebookParameters(panel);
  if (parameters.length === 0) {
    await showErrorMessage(
      'Run as batch',
      'This notebook has no cell tagged "parameters": tag the cell that assigns the parameters to sweep.'
    );
    return null;
  }
  const result = await showDialog({
    title: `Run ${panel.context.path} as batch`,
    body: new BatchForm(parameters),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Start batch' })],
    focusNodeSelector: 'input'
  });
  if (!result.button.accept || result.value === null) {
    return null;
  }
  const { grid, workers } = result.value;
  if (Object.keys(grid).length === 0) {
    await showErrorMessage('Run as batch', 'Give at least one value to sweep.');
    return null;
  }
  try {
    if (panel.context.model.dirty) {
      await panel.context.save();
    }
    return await startBatch({ notebook: panel.context.path, grid, workers });
  } catch (error) {
    const message =
      error instanceof MlopsApiError
        ? error.message + (error.hint ? `\n${error.hint}` : '')
        : String(error);
    await showErrorMessage('Cannot start the batch', message);
    return null;
  }
}

/**
 * "Track this notebook" and "Run as batch…" on every notebook's toolbar.
 */
class NotebookButtons implements DocumentRegistry.IWidgetExtension<
  NotebookPanel,
  INotebookModel
> {
  constructor(private _app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const track = new ToolbarButton({
      className: 'jp-mlops-track-button',
      label: 'Track',
      tooltip:
        'Track this notebook: insert and run %load_ext jupyter_mlops and %mlops_track',
      onClick: () => {
        void this._app.commands.execute(NotebookCommandIDs.trackNotebook, {
          path: panel.context.path
        });
      }
    });
    const batch = new ToolbarButton({
      className: 'jp-mlops-batch-button',
      label: 'Batch…',
      tooltip: 'Run as batch: sweep a parameter grid with jupyter mlops batch',
      onClick: () => {
        void this._app.commands.execute(NotebookCommandIDs.runAsBatch, {
          path: panel.context.path
        });
      }
    });
    track.node.dataset.testid = 'mlops-track-notebook';
    batch.node.dataset.testid = 'mlops-run-as-batch';
    panel.toolbar.insertItem(10, 'mlopsTrack', track);
    panel.toolbar.insertItem(11, 'mlopsBatch', batch);
    return new DisposableDelegate(() => {
      track.dispose();
      batch.dispose();
    });
  }
}

/**
 * The notebook toolbar buttons and their commands.
 */
export const notebookActionsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlops:notebook-actions',
  description:
    'Notebook actions: "Track this notebook" and "Run as batch…" (toolbar and palette).',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ): void => {
    const { commands } = app;
    // The notebook a command acts on: the one of its `path` argument, else the current.
    const target = (args: { path?: unknown }): NotebookPanel | null => {
      if (typeof args.path === 'string') {
        const found = tracker.find(panel => panel.context.path === args.path);
        if (found) {
          return found;
        }
      }
      return tracker.currentWidget;
    };

    commands.addCommand(NotebookCommandIDs.trackNotebook, {
      label: 'Track this notebook',
      caption: 'Insert and run %load_ext jupyter_mlops and %mlops_track',
      isEnabled: () => tracker.currentWidget !== null,
      execute: async args => {
        const panel = target(args);
        if (panel) {
          await trackNotebook(panel);
        }
      }
    });

    commands.addCommand(NotebookCommandIDs.runAsBatch, {
      label: 'Run as batch…',
      caption:
        'Sweep a parameter grid of this notebook with jupyter mlops batch',
      isEnabled: () => tracker.currentWidget !== null,
      execute: async args => {
        const panel = target(args);
        if (!panel) {
          return;
        }
        const job = await runAsBatch(panel);
        if (job && commands.hasCommand(NotebookCommandIDs.showBatches)) {
          await commands.execute(NotebookCommandIDs.showBatches, {
            id: job.id
          });
        }
      }
    });

    tracker.currentChanged.connect(() => {
      commands.notifyCommandChanged(NotebookCommandIDs.trackNotebook);
      commands.notifyCommandChanged(NotebookCommandIDs.runAsBatch);
    });

    if (palette) {
      for (const command of [
        NotebookCommandIDs.trackNotebook,
        NotebookCommandIDs.runAsBatch
      ]) {
        palette.addItem({ command, category: 'MLOps' });
      }
    }

    app.docRegistry.addWidgetExtension('Notebook', new NotebookButtons(app));
  }
};
