/**
 * The "Notebook diff" tab: nbdime's rendering of the diff from `a` to `b`.
 */
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Panel } from '@lumino/widgets';
import { NotebookDiffWidget } from 'nbdime/lib/diff/widget';

import { fetchDiff } from '../api';
import { IDiffOptions, IDiffResponse, IRefInfo } from '../model';
import {
  DiffBanner,
  IDiffServices,
  LoadState,
  StatusLine,
  diffModel
} from './diffCommon';

/**
 * Content of the diff tab. Fetches `GET /jupyter-mlops/api/diff` and renders
 * the answer with nbdime's `NotebookDiffWidget`.
 */
export class DiffView extends Panel {
  constructor(options: DiffView.IOptions) {
    super();
    this.addClass('jp-mlops-diff');
    // nbdime's stylesheet scopes its editor layout to `.nbdime-root`.
    this.addClass('nbdime-root');
    this.node.tabIndex = -1;
    this.a = options.a;
    this.b = options.b;
    this._services = options.services;
    this._fetch = options.fetch ?? fetchDiff;
    this._options = {
      ignoreOutputs: options.ignoreOutputs ?? false,
      ignoreMetadata: options.ignoreMetadata ?? false
    };
    this.addWidget(this._banner);
    this.addWidget(this._status);
  }

  /** Reference of the base side. */
  readonly a: string;
  /** Reference of the remote side. */
  readonly b: string;

  /** The labels the server gave both sides, once a diff arrived. */
  get labels(): { a: IRefInfo; b: IRefInfo } | null {
    return this._labels;
  }

  /** Emitted when the labels of both sides are known. */
  get labelsChanged(): ISignal<this, { a: IRefInfo; b: IRefInfo }> {
    return this._labelsChanged;
  }

  get state(): LoadState {
    return this._state;
  }

  get ignoreOutputs(): boolean {
    return this._options.ignoreOutputs ?? false;
  }

  set ignoreOutputs(value: boolean) {
    if (value !== this.ignoreOutputs) {
      this._options.ignoreOutputs = value;
      void this.reload();
    }
  }

  get ignoreMetadata(): boolean {
    return this._options.ignoreMetadata ?? false;
  }

  set ignoreMetadata(value: boolean) {
    if (value !== this.ignoreMetadata) {
      this._options.ignoreMetadata = value;
      void this.reload();
    }
  }

  /**
   * Fetch the diff again and render it; the answer of the latest call wins.
   */
  async reload(): Promise<void> {
    const request = ++this._request;
    this._setState('loading');
    this._status.loading('Loading the diff…');
    let data: IDiffResponse;
    try {
      data = await this._fetch(this.a, this.b, { ...this._options });
    } catch (error) {
      if (this._isCurrent(request)) {
        this._dropDiff();
        this._status.error(error, 'Cannot show the diff');
        this._setState('error');
      }
      return;
    }
    if (!this._isCurrent(request)) {
      return;
    }
    this._dropDiff();
    this._labels = { a: data.a, b: data.b };
    this._banner.set(data.a, data.b);
    this._labelsChanged.emit(this._labels);
    try {
      const widget = new NotebookDiffWidget({
        model: diffModel(data),
        ...this._services
      });
      this._diff = widget;
      this.addWidget(widget);
      this._status.loading('Rendering the diff…');
      await widget.init();
    } catch (error) {
      if (this._isCurrent(request)) {
        this._dropDiff();
        this._status.error(error, 'Cannot render the diff');
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
    Signal.clearData(this);
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

  private _isCurrent(request: number): boolean {
    return !this.isDisposed && request === this._request;
  }

  private _dropDiff(): void {
    if (this._diff) {
      this._diff.dispose();
      this._diff = null;
    }
  }

  private _setState(state: LoadState): void {
    this._state = state;
    this.node.dataset.state = state;
  }

  private _services: IDiffServices;
  private _fetch: DiffView.Fetch;
  private _options: IDiffOptions;
  private _banner = new DiffBanner();
  private _status = new StatusLine();
  private _diff: NotebookDiffWidget | null = null;
  private _labels: { a: IRefInfo; b: IRefInfo } | null = null;
  private _labelsChanged = new Signal<this, { a: IRefInfo; b: IRefInfo }>(this);
  private _request = 0;
  private _state: LoadState = 'loading';
}

export namespace DiffView {
  export type Fetch = (
    a: string,
    b: string,
    options: IDiffOptions
  ) => Promise<IDiffResponse>;

  export interface IOptions {
    a: string;
    b: string;
    services: IDiffServices;
    ignoreOutputs?: boolean;
    ignoreMetadata?: boolean;
    /** Fetches the diff (default: the server's diff endpoint). */
    fetch?: Fetch;
  }
}
