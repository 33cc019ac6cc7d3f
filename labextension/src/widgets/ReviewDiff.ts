/**
 * nbdime's notebook diff with a column of comments beside each cell of the
 * candidate notebook.
 */
import { Panel, Widget } from '@lumino/widgets';
import type { CellDiffModel } from 'nbdime/lib/diff/model';
import {
  CellDiffWidget,
  MetadataDiffWidget,
  NotebookDiffWidget
} from 'nbdime/lib/diff/widget';
import {
  ADDED_CHUNK_PANEL_CLASS,
  CHUNK_PANEL_CLASS,
  REMOVED_CHUNK_PANEL_CLASS
} from 'nbdime/lib/diff/widget/common';

import { IReviewComment } from '../model';
import { IDiffServices } from './diffCommon';

/**
 * Id of the candidate's cell a cell of the diff shows, or null when the
 * candidate has no such cell (a deleted cell) or the cell has no id
 * (nbformat < 4.5).
 *
 * For unchanged and patched cells nbdime's `cellId.remote` is the base id
 * with the diff's `id` entry applied; for added cells it is the added cell's
 * id: in every case the id of the cell in the patched (candidate) notebook.
 */
export function candidateCellId(cell: CellDiffModel): string | null {
  if (cell.deleted) {
    return null;
  }
  const id = cell.cellId?.remote;
  return typeof id === 'string' && id.length > 0 ? id : null;
}

/**
 * The comments on one cell and a box to add one.
 */
export class CellComments extends Widget {
  constructor(options: CellComments.IOptions) {
    super();
    this.cellId = options.cellId;
    this._submit = options.submit;
    this.addClass('jp-mlops-cell-comments');
    this.node.dataset.cellId = options.cellId;
    this.node.dataset.testid = 'mlops-cell-comments';

    this._list = document.createElement('ol');
    this._list.className = 'jp-mlops-comment-list';

    const form = document.createElement('form');
    form.className = 'jp-mlops-comment-form';
    this._input = document.createElement('textarea');
    this._input.className = 'jp-mlops-comment-input';
    this._input.rows = 2;
    this._input.placeholder = 'Comment on this cell…';
    this._input.setAttribute('aria-label', `Comment on cell ${options.cellId}`);
    this._input.dataset.testid = 'mlops-comment-input';
    this._button = document.createElement('button');
    this._button.type = 'submit';
    this._button.className = 'jp-mlops-button';
    this._button.textContent = 'Comment';
    this._button.dataset.testid = 'mlops-comment-submit';
    this._button.disabled = true;
    this._error = document.createElement('div');
    this._error.className = 'jp-mlops-comment-error';
    this._error.setAttribute('role', 'alert');
    this._error.dataset.testid = 'mlops-comment-error';
    this._error.hidden = true;

    this._input.addEventListener('input', () => this._updateButton());
    this._input.addEventListener('keydown', event => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        void this._send();
      }
    });
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this._send();
    });
    form.append(this._input, this._button, this._error);
    this.node.append(this._list, form);
    this.setComments([]);
  }

  /** Id of the candidate's cell. */
  readonly cellId: string;

  /**
   * Show these comments (those anchored to this cell), oldest first.
   */
  setComments(comments: ReadonlyArray<IReviewComment>): void {
    this._list.replaceChildren(...comments.map(commentNode));
    this._list.hidden = comments.length === 0;
    this.toggleClass('jp-mod-commented', comments.length > 0);
  }

  private _updateButton(): void {
    this._button.disabled = this._sending || this._input.value.trim() === '';
  }

  private async _send(): Promise<void> {
    const text = this._input.value.trim();
    if (this._sending || text === '') {
      return;
    }
    this._sending = true;
    this._error.hidden = true;
    this._button.setAttribute('aria-busy', 'true');
    this._updateButton();
    try {
      await this._submit(this.cellId, text);
      if (!this.isDisposed) {
        this._input.value = '';
      }
    } catch (error) {
      if (!this.isDisposed) {
        this._error.textContent =
          error instanceof Error ? error.message : String(error);
        this._error.hidden = false;
      }
    } finally {
      this._sending = false;
      this._button.removeAttribute('aria-busy');
      if (!this.isDisposed) {
        this._updateButton();
      }
    }
  }

  private _submit: CellComments.Submit;
  private _list: HTMLOListElement;
  private _input: HTMLTextAreaElement;
  private _button: HTMLButtonElement;
  private _error: HTMLDivElement;
  private _sending = false;
}

export namespace CellComments {
  /** Posts a comment; resolves once the server stored it. */
  export type Submit = (cellId: string, text: string) => Promise<void>;

  export interface IOptions {
    cellId: string;
    submit: Submit;
  }
}

/**
 * One comment: author, time, text (plain text, never HTML).
 */
export function commentNode(comment: IReviewComment): HTMLLIElement {
  const item = document.createElement('li');
  item.className = 'jp-mlops-comment';
  item.dataset.testid = 'mlops-comment';
  item.dataset.commentId = comment.id;
  const meta = document.createElement('div');
  meta.className = 'jp-mlops-comment-meta';
  const author = document.createElement('span');
  author.className = 'jp-mlops-comment-author';
  author.textContent = comment.author;
  const time = document.createElement('time');
  time.dateTime = comment.created_at;
  time.textContent = formatTime(comment.created_at);
  meta.append(author, ' · ', time);
  const text = document.createElement('div');
  text.className = 'jp-mlops-comment-text';
  text.textContent = comment.text;
  item.append(meta, text);
  return item;
}

/**
 * A local, readable form of an ISO time; the ISO text when it does not parse.
 */
export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/**
 * `NotebookDiffWidget` whose cells of the candidate notebook each sit in a
 * row with their {@link CellComments}.
 *
 * The chunking is nbdime's (see `NotebookDiffWidget.init`): an unchanged or
 * patched cell alone, added and removed cells side by side in a chunk panel.
 */
export class ReviewDiffWidget extends NotebookDiffWidget {
  constructor(options: ReviewDiffWidget.IOptions) {
    super({ model: options.model, ...options.services });
    this.addClass('jp-mlops-review-diff');
    this._services = options.services;
    this._submit = options.submit;
    this._commentsFor = options.commentsFor;
  }

  /**
   * The comment widgets, by candidate cell id.
   */
  get comments(): ReadonlyMap<string, CellComments> {
    return this._comments;
  }

  /**
   * Add the sub-widgets, one chunk of cells per animation frame.
   */
  init(): Promise<void> {
    const model = this.model;
    let work = Promise.resolve();
    work = work.then(() => {
      if (model.metadata) {
        this.addWidget(
          new MetadataDiffWidget({
            model: model.metadata,
            editorFactory: this._editorFactory,
            translator: this._translator,
            ...this._viewOptions
          })
        );
      }
    });
    for (const chunk of model.chunkedCells) {
      work = work.then(
        () =>
          new Promise<void>(resolve => {
            if (this.isDisposed) {
              resolve();
              return;
            }
            if (chunk.length === 1 && !(chunk[0].added || chunk[0].deleted)) {
              this.addWidget(this._cellRow(chunk[0]));
            } else {
              const chunkPanel = new Panel();
              chunkPanel.addClass(CHUNK_PANEL_CLASS);
              const addedPanel = new Panel();
              addedPanel.addClass(ADDED_CHUNK_PANEL_CLASS);
              const removedPanel = new Panel();
              removedPanel.addClass(REMOVED_CHUNK_PANEL_CLASS);
              for (const cell of chunk) {
                (cell.deleted ? removedPanel : addedPanel).addWidget(
                  this._cellRow(cell)
                );
              }
              chunkPanel.addWidget(addedPanel);
              chunkPanel.addWidget(removedPanel);
              this.addWidget(chunkPanel);
            }
            requestAnimationFrame(() => resolve());
          })
      );
    }
    return work;
  }

  dispose(): void {
    this._comments.clear();
    super.dispose();
  }

  /**
   * nbdime's widget for one cell, beside its comments when it is a cell of
   * the candidate with an id.
   */
  private _cellRow(cell: CellDiffModel): Widget {
    const cellWidget = new CellDiffWidget({
      model: cell,
      mimetype: this.model.mimetype,
      ...this._services,
      ...this._viewOptions
    });
    const cellId = candidateCellId(cell);
    if (cellId === null || this._comments.has(cellId)) {
      return cellWidget;
    }
    const row = new Panel();
    row.addClass('jp-mlops-review-cellrow');
    row.node.dataset.cellId = cellId;
    const comments = new CellComments({ cellId, submit: this._submit });
    this._comments.set(cellId, comments);
    comments.setComments(this._commentsFor(cellId));
    row.addWidget(cellWidget);
    row.addWidget(comments);
    return row;
  }

  private _services: IDiffServices;
  private _submit: CellComments.Submit;
  private _commentsFor: (cellId: string) => ReadonlyArray<IReviewComment>;
  private _comments = new Map<string, CellComments>();
}

export namespace ReviewDiffWidget {
  export interface IOptions {
    model: NotebookDiffWidget['model'];
    services: IDiffServices;
    submit: CellComments.Submit;
    /** The comments of the review (as it is now) on a cell. */
    commentsFor: (cellId: string) => ReadonlyArray<IReviewComment>;
  }
}
