/**
 * The "Review" tab: state, candidate and base, nbdime's diff from base to
 * candidate with comments beside the candidate's cells, and the decision.
 */
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Panel, Widget } from '@lumino/widgets';

import {
  addReviewComment,
  decideReview,
  fetchDiffAt,
  fetchReview
} from '../api';
import {
  IDiffResponse,
  IReview,
  IReviewComment,
  ReviewDecision,
  ReviewState
} from '../model';
import {
  DiffBanner,
  IDiffServices,
  LoadState,
  StatusLine,
  diffModel,
  errorText
} from './diffCommon';
import { ReviewDiffWidget, commentNode, formatTime } from './ReviewDiff';

const STATE_LABELS: Record<ReviewState, string> = {
  open: 'Open',
  approved: 'Approved',
  changes_requested: 'Changes requested'
};

/**
 * The server calls a {@link ReviewView} makes (all of them by default).
 */
export interface IReviewClient {
  fetchReview(id: string): Promise<IReview>;
  fetchDiffAt(path: string): Promise<IDiffResponse>;
  addComment(id: string, cellId: string, text: string): Promise<IReview>;
  decide(
    id: string,
    decision: ReviewDecision,
    message?: string
  ): Promise<IReview>;
}

const defaultClient: IReviewClient = {
  fetchReview: id => fetchReview(id),
  fetchDiffAt: path => fetchDiffAt(path),
  addComment: (id, cellId, text) => addReviewComment(id, cellId, text),
  decide: (id, decision, message) => decideReview(id, decision, message)
};

/**
 * Content of the review tab.
 */
export class ReviewView extends Panel {
  constructor(options: ReviewView.IOptions) {
    super();
    this.reviewId = options.id;
    this._services = options.services;
    this._client = options.client ?? defaultClient;
    this.addClass('jp-mlops-review');
    this.addClass('nbdime-root');
    this.node.tabIndex = -1;
    this.node.dataset.reviewId = options.id;
    this._header = new ReviewHeader({
      decide: (decision, message) => this._decide(decision, message)
    });
    this.addWidget(this._header);
    this.addWidget(this._status);
    this.addWidget(this._banner);
  }

  /** Id of the review shown. */
  readonly reviewId: string;

  /** The review as the server last returned it. */
  get review(): IReview | null {
    return this._review;
  }

  /** Emitted whenever the server returned the review. */
  get reviewChanged(): ISignal<this, IReview> {
    return this._reviewChanged;
  }

  get state(): LoadState {
    return this._state;
  }

  /**
   * Fetch the review and its diff, and render both.
   */
  async reload(): Promise<void> {
    const request = ++this._request;
    this._setState('loading');
    this._status.loading('Loading the review…');
    let review: IReview;
    try {
      review = await this._client.fetchReview(this.reviewId);
    } catch (error) {
      if (this._isCurrent(request)) {
        this._dropDiff();
        this._status.error(error, 'Cannot show the review');
        this._setState('error');
      }
      return;
    }
    if (!this._isCurrent(request)) {
      return;
    }
    this._dropDiff();
    this.setReview(review);
    this._status.loading('Loading the diff…');
    let data: IDiffResponse;
    try {
      data = await this._client.fetchDiffAt(review.diff_url);
    } catch (error) {
      if (this._isCurrent(request)) {
        this._status.error(error, 'Cannot show the diff');
        this._setState('error');
      }
      return;
    }
    if (!this._isCurrent(request)) {
      return;
    }
    this._banner.set(review.base ? data.a : null, data.b);
    try {
      const widget = new ReviewDiffWidget({
        model: diffModel(data),
        services: this._services,
        submit: (cellId, text) => this._comment(cellId, text),
        commentsFor: cellId => this._commentsOn(cellId)
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

  /**
   * Show this state of the review: header, decision, every cell's comments.
   */
  setReview(review: IReview): void {
    this._review = review;
    this._header.showReview(review);
    if (this._diff) {
      for (const [cellId, widget] of this._diff.comments) {
        widget.setComments(this._commentsOn(cellId));
      }
    }
    this._updateOtherComments();
    this._reviewChanged.emit(review);
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
    if (this._request === 0) {
      void this.reload();
    }
  }

  protected onActivateRequest(_msg: Message): void {
    this.node.focus();
  }

  private _commentsOn(cellId: string): IReviewComment[] {
    return (this._review?.comments ?? []).filter(c => c.cell_id === cellId);
  }

  /**
   * Comments whose cell has no comment box here (not in the candidate as
   * rendered, or the diff is not shown), listed in the header.
   */
  private _updateOtherComments(): void {
    if (this._state === 'loading' || !this._review) {
      this._header.setOtherComments([]);
      return;
    }
    const shown = this._diff?.comments;
    this._header.setOtherComments(
      this._review.comments.filter(c => !shown?.has(c.cell_id))
    );
  }

  private async _comment(cellId: string, text: string): Promise<void> {
    try {
      this.setReview(
        await this._client.addComment(this.reviewId, cellId, text)
      );
    } catch (error) {
      const { message, hint } = errorText(error);
      throw new Error(hint ? `${message} ${hint}` : message);
    }
  }

  private async _decide(
    decision: ReviewDecision,
    message: string
  ): Promise<void> {
    this.setReview(
      await this._client.decide(this.reviewId, decision, message || undefined)
    );
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
    this._updateOtherComments();
  }

  private _services: IDiffServices;
  private _client: IReviewClient;
  private _header: ReviewHeader;
  private _status = new StatusLine();
  private _banner = new DiffBanner();
  private _diff: ReviewDiffWidget | null = null;
  private _review: IReview | null = null;
  private _reviewChanged = new Signal<this, IReview>(this);
  private _request = 0;
  private _state: LoadState = 'loading';
}

export namespace ReviewView {
  export interface IOptions {
    id: string;
    services: IDiffServices;
    client?: IReviewClient;
  }
}

/**
 * Header of the review tab: who asked for what, the state, the decision.
 */
class ReviewHeader extends Widget {
  constructor(options: {
    decide: (decision: ReviewDecision, message: string) => Promise<void>;
  }) {
    super();
    this._decideCallback = options.decide;
    this.addClass('jp-mlops-review-header');
    this.hide();

    const titleRow = document.createElement('div');
    titleRow.className = 'jp-mlops-review-titlerow';
    this._title = document.createElement('h2');
    this._title.className = 'jp-mlops-review-title';
    this._badge = document.createElement('span');
    this._badge.className = 'jp-mlops-review-state';
    this._badge.dataset.testid = 'mlops-review-state';
    titleRow.append(this._title, this._badge);

    this._fields = document.createElement('dl');
    this._fields.className = 'jp-mlops-fields jp-mlops-review-fields';

    const actions = document.createElement('div');
    actions.className = 'jp-mlops-review-actions';
    this._message = document.createElement('input');
    this._message.type = 'text';
    this._message.className = 'jp-mlops-review-message';
    this._message.placeholder = 'Message with the decision (optional)';
    this._message.setAttribute('aria-label', 'Message with the decision');
    this._message.dataset.testid = 'mlops-review-message';
    this._approve = button(
      'Approve',
      'mlops-review-approve',
      'jp-mlops-button jp-mod-accept'
    );
    this._requestChanges = button(
      'Request changes',
      'mlops-review-request-changes',
      'jp-mlops-button jp-mod-warn'
    );
    this._approve.addEventListener('click', () => {
      void this._decide('approve');
    });
    this._requestChanges.addEventListener('click', () => {
      void this._decide('request_changes');
    });
    this._error = document.createElement('div');
    this._error.className = 'jp-mlops-review-error';
    this._error.setAttribute('role', 'alert');
    this._error.dataset.testid = 'mlops-review-error';
    this._error.hidden = true;
    actions.append(this._message, this._approve, this._requestChanges);

    this._other = document.createElement('section');
    this._other.className = 'jp-mlops-review-other';
    this._other.dataset.testid = 'mlops-review-other-comments';
    this._other.hidden = true;

    this.node.append(titleRow, this._fields, actions, this._error, this._other);
  }

  showReview(review: IReview): void {
    this._title.textContent = `Review ${review.id}`;
    this._badge.textContent = STATE_LABELS[review.state] ?? review.state;
    this._badge.dataset.state = review.state;
    const rows: [string, string, string | null][] = [
      ['Candidate', review.candidate.label, review.candidate.ref],
      [
        'Base',
        review.base ? review.base.label : 'empty notebook',
        review.base ? review.base.ref : null
      ],
      [
        'Opened by',
        `${review.created_by} · ${formatTime(review.created_at)}`,
        null
      ]
    ];
    if (review.decided_by || review.decided_at) {
      rows.push([
        'Decided by',
        `${review.decided_by ?? 'unknown'}` +
          (review.decided_at ? ` · ${formatTime(review.decided_at)}` : ''),
        null
      ]);
    }
    this._fields.replaceChildren(
      ...rows.flatMap(([name, value, title]) => {
        const dt = document.createElement('dt');
        dt.textContent = name;
        const dd = document.createElement('dd');
        dd.textContent = value;
        dd.dataset.testid = `mlops-review-${name.toLowerCase().replace(/ /g, '-')}`;
        if (title) {
          dd.title = title;
        }
        return [dt, dd];
      })
    );
    this.show();
  }

  setOtherComments(comments: ReadonlyArray<IReviewComment>): void {
    if (comments.length === 0) {
      this._other.replaceChildren();
      this._other.hidden = true;
      return;
    }
    const heading = document.createElement('h3');
    heading.textContent = 'Comments on cells not shown in this diff';
    const list = document.createElement('ol');
    list.className = 'jp-mlops-comment-list';
    for (const comment of comments) {
      const item = commentNode(comment);
      const cell = document.createElement('div');
      cell.className = 'jp-mlops-comment-cell';
      cell.textContent = `Cell ${comment.cell_id}`;
      item.prepend(cell);
      list.appendChild(item);
    }
    this._other.replaceChildren(heading, list);
    this._other.hidden = false;
  }

  private async _decide(decision: ReviewDecision): Promise<void> {
    if (this._busy) {
      return;
    }
    this._busy = true;
    this._error.hidden = true;
    const pressed =
      decision === 'approve' ? this._approve : this._requestChanges;
    pressed.setAttribute('aria-busy', 'true');
    this._approve.disabled = true;
    this._requestChanges.disabled = true;
    try {
      await this._decideCallback(decision, this._message.value.trim());
      this._message.value = '';
    } catch (error) {
      const { message, hint } = errorText(error);
      this._error.textContent = hint ? `${message} ${hint}` : message;
      this._error.hidden = false;
    } finally {
      this._busy = false;
      pressed.removeAttribute('aria-busy');
      this._approve.disabled = false;
      this._requestChanges.disabled = false;
    }
  }

  private _decideCallback: (
    decision: ReviewDecision,
    message: string
  ) => Promise<void>;
  private _title: HTMLHeadingElement;
  private _badge: HTMLSpanElement;
  private _fields: HTMLDListElement;
  private _message: HTMLInputElement;
  private _approve: HTMLButtonElement;
  private _requestChanges: HTMLButtonElement;
  private _error: HTMLDivElement;
  private _other: HTMLElement;
  private _busy = false;
}

function button(
  text: string,
  testid: string,
  className: string
): HTMLButtonElement {
  const node = document.createElement('button');
  node.type = 'button';
  node.className = className;
  node.textContent = text;
  node.dataset.testid = testid;
  return node;
}
