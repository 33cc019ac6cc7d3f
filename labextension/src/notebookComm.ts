/**
 * The frontend half of the live-notebook comm (kernel half:
 * `jupyter_mlops/kernel/live_notebook.py`).
 *
 * `%mlops_track` makes the kernel open a comm with target `jupyter_mlops.notebook`.
 * Just before a cell that mentions `mlops_track` is executed, this module sends
 * the notebook model as the user sees it (unsaved edits included) over that comm,
 * so the kernel snapshots the live notebook instead of the file on disk.
 *
 * Ordering: `NotebookActions.executionScheduled` is emitted synchronously right
 * before `CodeCell.execute` sends the `execute_request`. Both messages are shell
 * messages on the same kernel connection and the same (sub)shell, so the kernel
 * handles the model before it runs the cell. `Kernel.IComm.send` would not give
 * that guarantee: since JupyterLab 4.4 a comm's messages may go to a kernel
 * subshell ("commsOverSubshells"), which runs concurrently with the main shell.
 * The model is therefore sent as a `comm_msg` addressed to the subshell the
 * notebook's execute requests use (`kernel.subshellId`, the main shell for a
 * notebook).
 */

import type { Cell } from '@jupyterlab/cells';
import type * as nbformat from '@jupyterlab/nbformat';
import type {
  INotebookTracker,
  Notebook,
  NotebookPanel
} from '@jupyterlab/notebook';
import { NotebookActions } from '@jupyterlab/notebook';
import type { Kernel, Session } from '@jupyterlab/services';
import { KernelMessage } from '@jupyterlab/services';
import type { JSONObject } from '@lumino/coreutils';
import type { IDisposable } from '@lumino/disposable';
import { Signal } from '@lumino/signaling';

/**
 * The comm target the kernel opens (`live_notebook.COMM_TARGET`).
 */
export const COMM_TARGET = 'jupyter_mlops.notebook';

/**
 * The comm protocol version this frontend speaks (`data.protocol` of the open).
 */
export const PROTOCOL_VERSION = 1;

/**
 * A cell whose source contains this is tracked (`%mlops_track`, `%%mlops_track`).
 */
export const TRACKING_MARKER = 'mlops_track';

/**
 * The kernel a cell that mentions `marker` (by default a tracked cell) is about
 * to run in, from `NotebookActions.executionScheduled`; null for any other cell.
 */
export function trackedCellKernel(
  tracker: INotebookTracker,
  args: { notebook: Notebook; cell: Cell },
  marker: string = TRACKING_MARKER
): Kernel.IKernelConnection | null {
  if (!args.cell.model.sharedModel.getSource().includes(marker)) {
    return null;
  }
  const panel = tracker.find(candidate => candidate.content === args.notebook);
  return panel?.sessionContext.session?.kernel ?? null;
}

/**
 * What the comm carries: the notebook model and the cell about to run.
 */
export interface ILiveNotebookMessage {
  notebook: nbformat.INotebookContent;
  cell_id: string;
}

/**
 * Registers the comm target on every notebook kernel and keeps the kernels'
 * live-notebook comms, keyed by kernel connection and comm id.
 */
export class NotebookCommManager implements IDisposable {
  constructor(tracker: INotebookTracker) {
    this._tracker = tracker;
    tracker.widgetAdded.connect(this._onPanelAdded, this);
    tracker.forEach(panel => this._onPanelAdded(tracker, panel));
    NotebookActions.executionScheduled.connect(
      this._onExecutionScheduled,
      this
    );
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * The open live-notebook comms of a kernel connection.
   */
  commsOf(kernel: Kernel.IKernelConnection): Kernel.IComm[] {
    const state = this._kernels.get(kernel);
    if (!state) {
      return [];
    }
    // A kernel restart disposes the connection's comms without a close message.
    for (const [commId, comm] of state.comms) {
      if (comm.isDisposed) {
        state.comms.delete(commId);
      }
    }
    return [...state.comms.values()];
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    NotebookActions.executionScheduled.disconnect(
      this._onExecutionScheduled,
      this
    );
    for (const kernel of [...this._kernels.keys()]) {
      this._detach(kernel);
    }
    Signal.clearData(this);
  }

  private _onPanelAdded(_: INotebookTracker, panel: NotebookPanel): void {
    panel.sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    panel.disposed.connect(this._onPanelDisposed, this);
    const kernel = panel.sessionContext.session?.kernel;
    if (kernel) {
      this._attach(kernel);
    }
  }

  private _onPanelDisposed(panel: NotebookPanel): void {
    this._sweep(panel);
  }

  private _onKernelChanged(
    _: unknown,
    change: Session.ISessionConnection.IKernelChangedArgs
  ): void {
    if (change.newValue) {
      this._attach(change.newValue);
    }
    this._sweep();
  }

  /**
   * Register the target on a kernel connection and adopt comms the kernel already
   * has open (opened before this page loaded, e.g. after a browser reload).
   */
  private _attach(kernel: Kernel.IKernelConnection): void {
    if (this._isDisposed || kernel.isDisposed || this._kernels.has(kernel)) {
      return;
    }
    const state: Private.IKernelState = {
      comms: new Map(),
      onOpen: (comm, msg) => {
        const protocol = (msg.content.data as { protocol?: unknown }).protocol;
        if (protocol !== PROTOCOL_VERSION) {
          console.warn(
            `jupyter-mlops: kernel speaks live-notebook protocol ${String(protocol)}, ` +
              `this frontend ${PROTOCOL_VERSION}; snapshots use the saved file.`
          );
          comm.close();
          return;
        }
        this._adopt(state, comm);
      }
    };
    this._kernels.set(kernel, state);
    kernel.registerCommTarget(COMM_TARGET, state.onOpen);
    kernel.disposed.connect(this._onKernelDisposed, this);
    void this._recover(kernel, state);
  }

  private async _recover(
    kernel: Kernel.IKernelConnection,
    state: Private.IKernelState
  ): Promise<void> {
    try {
      await kernel.info;
      if (kernel.isDisposed || this._kernels.get(kernel) !== state) {
        return;
      }
      const reply = await kernel.requestCommInfo({ target_name: COMM_TARGET });
      if (
        reply.content.status !== 'ok' ||
        this._kernels.get(kernel) !== state
      ) {
        return;
      }
      for (const [commId, info] of Object.entries(reply.content.comms)) {
        if (info.target_name === COMM_TARGET && !kernel.hasComm(commId)) {
          this._adopt(state, kernel.createComm(COMM_TARGET, commId));
        }
      }
    } catch (reason) {
      // A kernel that dies or restarts meanwhile has no comms to recover.
      if (!kernel.isDisposed) {
        console.debug('jupyter-mlops: could not list open comms.', reason);
      }
    }
  }

  private _adopt(state: Private.IKernelState, comm: Kernel.IComm): void {
    state.comms.set(comm.commId, comm);
    comm.onClose = () => {
      if (state.comms.get(comm.commId) === comm) {
        state.comms.delete(comm.commId);
      }
    };
  }

  private _onKernelDisposed(kernel: Kernel.IKernelConnection): void {
    this._detach(kernel);
  }

  /**
   * Forget the comms of a kernel connection. The kernel's comms stay open, so a
   * frontend that connects later (another window, a reload) can adopt them.
   */
  private _detach(kernel: Kernel.IKernelConnection): void {
    const state = this._kernels.get(kernel);
    if (!state) {
      return;
    }
    this._kernels.delete(kernel);
    kernel.disposed.disconnect(this._onKernelDisposed, this);
    if (!kernel.isDisposed) {
      kernel.removeCommTarget(COMM_TARGET, state.onOpen);
    }
    state.comms.clear();
  }

  /**
   * Detach from kernel connections no open notebook uses any more.
   */
  private _sweep(closing?: NotebookPanel): void {
    const used = new Set<Kernel.IKernelConnection>();
    this._tracker.forEach(panel => {
      const kernel = panel.sessionContext.session?.kernel;
      if (kernel && panel !== closing && !panel.isDisposed) {
        used.add(kernel);
      }
    });
    for (const kernel of [...this._kernels.keys()]) {
      if (!used.has(kernel)) {
        this._detach(kernel);
      }
    }
  }

  private _onExecutionScheduled(
    _: unknown,
    args: { notebook: Notebook; cell: Cell }
  ): void {
    const { notebook, cell } = args;
    const kernel = trackedCellKernel(this._tracker, args);
    if (!kernel || !notebook.model) {
      return;
    }
    const comms = this.commsOf(kernel);
    if (comms.length === 0) {
      return; // tracking has not started in this kernel yet: nothing listens
    }
    const message: ILiveNotebookMessage = {
      // INotebookModel declares DocumentRegistry.IModel's toJSON(): PartialJSONValue;
      // its implementation, NotebookModel.toJSON(), returns the nbformat content.
      notebook: notebook.model.toJSON() as nbformat.INotebookContent,
      cell_id: cell.model.id
    };
    for (const comm of comms) {
      try {
        Private.sendOnExecuteShell(kernel, comm, message);
      } catch (reason) {
        console.warn(
          'jupyter-mlops: could not send the live notebook.',
          reason
        );
      }
    }
  }

  private readonly _tracker: INotebookTracker;
  private readonly _kernels = new Map<
    Kernel.IKernelConnection,
    Private.IKernelState
  >();
  private _isDisposed = false;
}

namespace Private {
  export interface IKernelState {
    comms: Map<string, Kernel.IComm>;
    onOpen: (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg) => void;
  }

  /**
   * Send a `comm_msg` on the shell the kernel connection's execute requests use
   * (see the module notes: `IComm.send` may route it to a comm subshell).
   */
  export function sendOnExecuteShell(
    kernel: Kernel.IKernelConnection,
    comm: Kernel.IComm,
    data: ILiveNotebookMessage
  ): void {
    const msg = KernelMessage.createMessage<KernelMessage.ICommMsgMsg<'shell'>>(
      {
        msgType: 'comm_msg',
        channel: 'shell',
        username: kernel.username,
        session: kernel.clientId,
        subshellId: kernel.subshellId,
        content: {
          comm_id: comm.commId,
          // nbformat's types allow `undefined` members, which JSON has not: toJSON()
          // output is plain JSON.
          data: data as unknown as JSONObject
        }
      }
    );
    kernel.sendShellMessage(msg, false, true);
  }
}
