/**
 * The "Notebook snapshot" tab: a notebook artifact of a run, read-only.
 *
 * Sources are plain text (no editor, no kernel); markdown and outputs go
 * through JupyterLab's rendermime as untrusted content, like the outputs of a
 * notebook that was not trusted: HTML is sanitized and no script or
 * JavaScript output runs.
 */
import type * as nbformat from '@jupyterlab/nbformat';
import {
  IRenderMimeRegistry,
  MimeModel,
  IRenderMime
} from '@jupyterlab/rendermime';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';

import { fetchNotebookArtifact } from '../api';
import { LoadState, StatusLine } from './diffCommon';

/**
 * A notebook's text field: nbformat allows a string or a list of lines.
 */
function multiline(value: unknown): string {
  if (Array.isArray(value)) {
    return value.map(part => (typeof part === 'string' ? part : '')).join('');
  }
  return typeof value === 'string' ? value : '';
}

/**
 * The mime bundle an output shows (streams and errors as Lab's text types).
 */
function outputBundle(output: nbformat.IOutput): {
  data: ReadonlyPartialJSONObject;
  metadata: ReadonlyPartialJSONObject;
} | null {
  switch (output.output_type) {
    case 'stream': {
      const name = output.name === 'stderr' ? 'stderr' : 'stdout';
      return {
        data: { [`application/vnd.jupyter.${name}`]: multiline(output.text) },
        metadata: {}
      };
    }
    case 'error': {
      const traceback = Array.isArray(output.traceback)
        ? output.traceback.join('\n')
        : `${String(output.ename)}: ${String(output.evalue)}`;
      return {
        data: { 'application/vnd.jupyter.stderr': traceback },
        metadata: {}
      };
    }
    case 'execute_result':
    case 'display_data': {
      const raw = (output.data ?? {}) as Record<string, unknown>;
      const data: Record<string, unknown> = {};
      for (const [mime, value] of Object.entries(raw)) {
        // Text types are multiline strings in a file; JSON types are objects.
        data[mime] =
          Array.isArray(value) && value.every(v => typeof v === 'string')
            ? value.join('')
            : value;
      }
      return {
        data: data as ReadonlyPartialJSONObject,
        metadata: (output.metadata ?? {}) as ReadonlyPartialJSONObject
      };
    }
    default:
      return null;
  }
}

/**
 * Content of the snapshot tab: fetches the artifact and renders its cells.
 */
export class SnapshotView extends Panel {
  constructor(options: SnapshotView.IOptions) {
    super();
    this.addClass('jp-mlops-snapshot');
    this.node.tabIndex = -1;
    this.node.dataset.testid = 'mlops-snapshot';
    this.node.setAttribute('role', 'document');
    this.node.setAttribute(
      'aria-label',
      `Notebook of run ${options.label}, read-only`
    );
    this.runId = options.runId;
    this.path = options.path;
    this.label = options.label;
    this._rendermime = options.rendermime;
    this._fetch = options.fetch ?? fetchNotebookArtifact;
    const banner = new Widget();
    banner.addClass('jp-mlops-snapshot-banner');
    banner.node.dataset.testid = 'mlops-snapshot-banner';
    banner.node.textContent = `Read-only: ${options.path} of run ${options.label} (${options.runId}). Outputs are shown as untrusted.`;
    this.addWidget(banner);
    this.addWidget(this._status);
    this._setState('loading');
  }

  /** The run the notebook belongs to. */
  readonly runId: string;
  /** The notebook's artifact path in the run. */
  readonly path: string;
  /** What to call the run. */
  readonly label: string;

  get state(): LoadState {
    return this._state;
  }

  /**
   * Fetch the notebook again and render it; the answer of the latest call wins.
   */
  async reload(): Promise<void> {
    const request = ++this._request;
    this._setState('loading');
    this._status.loading('Loading the notebook…');
    let notebook: Record<string, unknown>;
    try {
      notebook = await this._fetch(this.runId, this.path);
    } catch (error) {
      if (this._isCurrent(request)) {
        this._dropCells();
        this._status.error(error, 'Cannot open the notebook');
        this._setState('error');
      }
      return;
    }
    if (!this._isCurrent(request)) {
      return;
    }
    this._dropCells();
    const cells = Array.isArray(notebook.cells)
      ? (notebook.cells as nbformat.ICell[])
      : null;
    if (cells === null) {
      this._status.error(
        new Error(`${this.path} has no cells: it is not a notebook`),
        'Cannot open the notebook'
      );
      this._setState('error');
      return;
    }
    try {
      const rendering: Promise<void>[] = [];
      for (const cell of cells) {
        const widget = this._cellWidget(cell, rendering);
        this._cells.push(widget);
        this.addWidget(widget);
      }
      await Promise.all(rendering);
    } catch (error) {
      if (this._isCurrent(request)) {
        this._status.error(error, 'Cannot render the notebook');
        this._setState('error');
      }
      return;
    }
    if (this._isCurrent(request)) {
      this._status.clear();
      this._setState('ready');
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._request++;
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this._state === 'loading' && this._request === 0) {
      void this.reload();
    }
  }

  protected onActivateRequest(_msg: Message): void {
    this.node.focus();
  }

  /**
   * One cell: its prompt and source as text, its outputs rendered untrusted.
   */
  private _cellWidget(cell: nbformat.ICell, rendering: Promise<void>[]): Panel {
    const panel = new Panel();
    panel.addClass('jp-mlops-snapshot-cell');
    const type = String(cell.cell_type);
    panel.node.dataset.testid = 'mlops-snapshot-cell';
    panel.node.dataset.cellType = type;
    const source = multiline(cell.source);

    const prompt = new Widget();
    prompt.addClass('jp-mlops-snapshot-prompt');
    if (type === 'code') {
      const count = (cell as nbformat.ICodeCell).execution_count;
      prompt.node.textContent = `[${typeof count === 'number' ? count : ' '}]:`;
    }
    panel.addWidget(prompt);

    if (type === 'markdown') {
      const markdown = this._render(
        { 'text/markdown': source },
        {},
        rendering,
        'jp-mlops-snapshot-markdown'
      );
      panel.addWidget(markdown ?? this._sourceWidget(source));
      return panel;
    }

    panel.addWidget(this._sourceWidget(source));
    if (type === 'code') {
      const outputs = (cell as nbformat.ICodeCell).outputs;
      for (const output of Array.isArray(outputs) ? outputs : []) {
        const bundle = outputBundle(output);
        if (bundle === null) {
          continue;
        }
        const widget =
          this._render(
            bundle.data,
            bundle.metadata,
            rendering,
            'jp-mlops-snapshot-outputs'
          ) ?? this._unshown(Object.keys(bundle.data));
        widget.node.dataset.testid = 'mlops-snapshot-output';
        panel.addWidget(widget);
      }
    }
    return panel;
  }

  private _sourceWidget(source: string): Widget {
    const widget = new Widget({ node: document.createElement('pre') });
    widget.addClass('jp-mlops-snapshot-source');
    widget.node.dataset.testid = 'mlops-snapshot-source';
    widget.node.textContent = source;
    return widget;
  }

  /**
   * A renderer of the safest type rendermime prefers for untrusted data.
   */
  private _render(
    data: ReadonlyPartialJSONObject,
    metadata: ReadonlyPartialJSONObject,
    rendering: Promise<void>[],
    className: string
  ): IRenderMime.IRenderer | null {
    const mimeType = this._rendermime.preferredMimeType(data, 'ensure');
    if (!mimeType) {
      return null;
    }
    const renderer = this._rendermime.createRenderer(mimeType);
    renderer.addClass(className);
    const model = new MimeModel({ data, metadata, trusted: false });
    rendering.push(renderer.renderModel(model));
    return renderer;
  }

  private _unshown(types: string[]): Widget {
    const widget = new Widget();
    widget.addClass('jp-mlops-snapshot-outputs');
    widget.addClass('jp-mlops-loading');
    widget.node.textContent = `(output not shown: ${types.join(', ') || 'empty'} is not safe to render untrusted)`;
    return widget;
  }

  private _isCurrent(request: number): boolean {
    return !this.isDisposed && request === this._request;
  }

  private _dropCells(): void {
    for (const cell of this._cells) {
      cell.dispose();
    }
    this._cells = [];
  }

  private _setState(state: LoadState): void {
    this._state = state;
    this.node.dataset.state = state;
  }

  private _rendermime: IRenderMimeRegistry;
  private _fetch: SnapshotView.Fetch;
  private _status = new StatusLine();
  private _cells: Panel[] = [];
  private _request = 0;
  private _state: LoadState = 'loading';
}

export namespace SnapshotView {
  export type Fetch = (
    runId: string,
    path: string
  ) => Promise<Record<string, unknown>>;

  export interface IOptions {
    runId: string;
    path: string;
    label: string;
    rendermime: IRenderMimeRegistry;
    /** Fetches the notebook (default: the server's artifact endpoint). */
    fetch?: Fetch;
  }
}
