/**
 * Pieces shared by the diff tab and the review tab: nbdime's rendering
 * services, the loading/error line, the banner naming both sides.
 */
import type { CodeEditor } from '@jupyterlab/codeeditor';
import type * as nbformat from '@jupyterlab/nbformat';
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { ITranslator } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';
import type { IDiffEntry } from 'nbdime/lib/diff/diffentries';
import { NotebookDiffModel } from 'nbdime/lib/diff/model';
import type { OutputDiffModel } from 'nbdime/lib/diff/model';

import { MlopsApiError } from '../api';
import { IDiffResponse, IRefInfo } from '../model';

/**
 * What nbdime's widgets need from JupyterLab to render cells and outputs.
 */
export interface IDiffServices {
  /** Lab's rendermime registry: markdown, images, rich outputs. */
  rendermime: IRenderMimeRegistry;
  /** Lab's inline editor factory (CodeMirror, with Lab's languages and theme). */
  editorFactory: CodeEditor.Factory;
  translator?: ITranslator;
}

/**
 * Where a view is: `data-state` of its node, for people and tests.
 */
export type LoadState = 'loading' | 'ready' | 'error';

/**
 * A message and what the user can do about it, from any error.
 */
export interface IErrorText {
  message: string;
  hint: string | null;
}

export function errorText(error: unknown): IErrorText {
  if (error instanceof MlopsApiError) {
    return { message: error.message, hint: error.hint };
  }
  if (error instanceof Error) {
    return { message: error.message, hint: null };
  }
  return { message: String(error), hint: null };
}

/**
 * nbdime's model of a diff answer, every output pinned untrusted.
 *
 * @throws when the notebook or the diff is not what nbdime expects
 */
export function diffModel(data: IDiffResponse): NotebookDiffModel {
  const model = nbdimeModel(data);
  for (const cell of model.cells) {
    for (const output of cell.outputs ?? []) {
      pinUntrusted(output);
    }
  }
  return model;
}

/**
 * Keep one output untrusted for good.
 *
 * nbdime puts a "Trust" button on each output (shown on hover) that re-renders it
 * trusted: its `<script>`s, event handlers and JavaScript outputs would then run in
 * Lab's page, with the user's Jupyter credentials. A diff or a review shows notebooks
 * someone else ran, so its outputs are only ever rendered through rendermime's
 * sanitizer: `trusted` reads false and ignores writes (the button is hidden by
 * style/diff.css as well).
 */
function pinUntrusted(output: OutputDiffModel): void {
  Object.defineProperty(output, 'trusted', {
    configurable: false,
    enumerable: true,
    get: () => false,
    set: () => undefined
  });
}

function nbdimeModel(data: IDiffResponse): NotebookDiffModel {
  if (
    data === null ||
    typeof data !== 'object' ||
    data.base === null ||
    typeof data.base !== 'object' ||
    !Array.isArray(data.diff)
  ) {
    throw new Error('The server answered without a notebook and a diff.');
  }
  return new NotebookDiffModel(
    data.base as unknown as nbformat.INotebookContent,
    data.diff as IDiffEntry[]
  );
}

/**
 * One line that says "Loading…" or what went wrong.
 */
export class StatusLine extends Widget {
  constructor() {
    super();
    this.addClass('jp-mlops-statusline');
    this.node.setAttribute('role', 'status');
    this.hide();
  }

  loading(text: string): void {
    this.removeClass('jp-mod-error');
    this.node.dataset.testid = 'mlops-diff-loading';
    this.node.replaceChildren(text);
    this.show();
  }

  error(error: unknown, prefix: string): void {
    const { message, hint } = errorText(error);
    this.addClass('jp-mod-error');
    this.node.dataset.testid = 'mlops-diff-error';
    const head = document.createElement('div');
    head.className = 'jp-mlops-statusline-message';
    head.textContent = `${prefix}: ${message}`;
    this.node.replaceChildren(head);
    if (hint) {
      const tip = document.createElement('div');
      tip.className = 'jp-mlops-statusline-hint';
      tip.textContent = hint;
      this.node.appendChild(tip);
    }
    this.show();
  }

  clear(): void {
    this.node.replaceChildren();
    this.hide();
  }
}

/**
 * The two sides of a diff: base (`a`, red) ↔ remote (`b`, green).
 */
export class DiffBanner extends Widget {
  constructor() {
    super();
    this.addClass('jp-mlops-diff-banner');
    this.hide();
  }

  set(a: IRefInfo | null, b: IRefInfo): void {
    this.node.replaceChildren(
      side(a, 'jp-mlops-diff-side-base', 'mlops-diff-label-a'),
      arrow(),
      side(b, 'jp-mlops-diff-side-remote', 'mlops-diff-label-b')
    );
    this.show();
  }
}

function side(info: IRefInfo | null, cls: string, testid: string): HTMLElement {
  const node = document.createElement('span');
  node.className = `jp-mlops-diff-side ${cls}`;
  node.dataset.testid = testid;
  node.textContent = info ? info.label || info.ref : 'empty notebook';
  node.title = info ? info.ref : 'No base: compared with an empty notebook';
  return node;
}

function arrow(): HTMLElement {
  const node = document.createElement('span');
  node.className = 'jp-mlops-diff-arrow';
  node.textContent = '↔';
  node.setAttribute('aria-hidden', 'true');
  return node;
}

/**
 * A checkbox with a label, for a tab's toolbar.
 */
export class ToolbarToggle extends Widget {
  constructor(options: ToolbarToggle.IOptions) {
    super({ node: document.createElement('label') });
    this.addClass('jp-mlops-toolbar-toggle');
    this.node.title = options.caption ?? options.label;
    this._input = document.createElement('input');
    this._input.type = 'checkbox';
    this._input.checked = options.checked ?? false;
    this._input.dataset.testid = options.testid;
    this._input.addEventListener('change', () => {
      options.onChange(this._input.checked);
    });
    this.node.append(this._input, options.label);
  }

  get checked(): boolean {
    return this._input.checked;
  }

  private _input: HTMLInputElement;
}

export namespace ToolbarToggle {
  export interface IOptions {
    label: string;
    caption?: string;
    checked?: boolean;
    testid: string;
    onChange: (checked: boolean) => void;
  }
}
