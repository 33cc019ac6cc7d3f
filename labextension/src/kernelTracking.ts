/**
 * Kernels track where the sidebar looks: the `trackingUri` setting reaches the
 * notebook kernels (kernel half: `lab_setting` in `jupyter_mlops/core/settings.py`).
 *
 * A kernel started by Lab inherits the server's environment, not the browser's
 * settings. So when the setting is set, the server is asked to resolve it (it
 * anchors a relative store at the folder it serves, puts its artifacts beside
 * it, and refuses what it does not accept), and the answer, or the refusal,
 * is put in the kernel's `JUPYTER_MLOPS_LAB_TRACKING` just before a tracked
 * cell runs. The kernel's resolver ranks it below an explicit `--tracking-uri`
 * and above `MLFLOW_TRACKING_URI`, as the server ranks the setting.
 *
 * It is set by a silent `execute_request` (no output, no history, no execution
 * count, no `pre_run_cell`) sent from `NotebookActions.executionScheduled` for
 * a cell that mentions `mlops`; that signal is emitted right before the cell's
 * own `execute_request` goes out on the same connection and subshell, so the
 * kernel runs the silent one first. Each kernel is
 * told once per page and again when the setting or the kernel (a restart)
 * changes; the first time even when the setting is empty, since another page
 * may have told it something before.
 */

import type { Cell } from '@jupyterlab/cells';
import type { INotebookTracker, Notebook } from '@jupyterlab/notebook';
import { NotebookActions } from '@jupyterlab/notebook';
import type { Kernel } from '@jupyterlab/services';
import type { IDisposable } from '@lumino/disposable';
import { Signal } from '@lumino/signaling';

import type { IStatusResponse } from './model';
import { trackedCellKernel } from './notebookComm';

/**
 * The kernel's environment variable (`settings.ENV_LAB_TRACKING`).
 */
export const KERNEL_VARIABLE = 'JUPYTER_MLOPS_LAB_TRACKING';

/**
 * Cells before which a kernel is told the setting: any that mentions `mlops`
 * (`%mlops_track`, `import jupyter_mlops`, `mlops.log_metrics(...)`): the Python
 * API starts a run as well as the magics do.
 */
export const KERNEL_MARKER = 'mlops';

/**
 * What a kernel is told: where the setting points, or why the server refused it.
 */
export type KernelTracking =
  | { uri: string; artifact_uri: string | null; detail: string }
  | { error: string };

/**
 * Python that sets (or, for null, removes) the kernel's variable.
 *
 * The value is JSON inside a JSON string literal, which Python reads as the
 * same string (JSON's escapes are Python's); `__import__` binds no name in the
 * user's namespace.
 */
export function kernelTrackingCode(value: KernelTracking | null): string {
  const environ = '__import__("os").environ';
  const name = JSON.stringify(KERNEL_VARIABLE);
  if (value === null) {
    return `${environ}.pop(${name}, None)`;
  }
  return `${environ}[${name}] = ${JSON.stringify(JSON.stringify(value))}`;
}

/**
 * Keeps what the setting resolves to, and hands it to kernels before tracked cells.
 */
export class KernelTrackingSync implements IDisposable {
  constructor(
    tracker: INotebookTracker,
    fetchStatus: () => Promise<IStatusResponse>
  ) {
    this._tracker = tracker;
    this._fetchStatus = fetchStatus;
    NotebookActions.executionScheduled.connect(
      this._onExecutionScheduled,
      this
    );
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * What kernels are told now (null: the setting is empty).
   */
  get current(): KernelTracking | null {
    return this._current;
  }

  /**
   * The setting changed to `uri` ('' when emptied); resolves once the server
   * answered. Requests must already carry the new setting (`setTrackingUri`).
   */
  async settingChanged(uri: string): Promise<void> {
    const generation = ++this._generation;
    if (!uri.trim()) {
      this._current = null;
      return;
    }
    let resolved: KernelTracking;
    try {
      const { tracking } = await this._fetchStatus();
      resolved =
        tracking.source === 'setting'
          ? {
              uri: tracking.uri,
              artifact_uri: tracking.artifact_uri,
              detail: tracking.detail
            }
          : { error: `the server resolved it from ${tracking.source}` };
    } catch (reason) {
      resolved = {
        error: reason instanceof Error ? reason.message : String(reason)
      };
    }
    if (generation === this._generation) {
      this._current = resolved;
    }
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
    Signal.clearData(this);
  }

  private _onExecutionScheduled(
    _: unknown,
    args: { notebook: Notebook; cell: Cell }
  ): void {
    const kernel = trackedCellKernel(this._tracker, args, KERNEL_MARKER);
    if (!kernel) {
      return;
    }
    const code = kernelTrackingCode(this._current);
    const told = this._told.get(kernel);
    if (told === code) {
      return;
    }
    if (told === undefined) {
      // A restart empties the kernel's environment: tell it again afterwards.
      kernel.statusChanged.connect(this._onKernelStatus, this);
    }
    this._told.set(kernel, code);
    // stop_on_error false: were it to fail, the cell queued after it still runs.
    kernel.requestExecute(
      { code, silent: true, store_history: false, stop_on_error: false },
      true
    );
  }

  private _onKernelStatus(
    kernel: Kernel.IKernelConnection,
    status: Kernel.Status
  ): void {
    if (
      status === 'restarting' ||
      status === 'autorestarting' ||
      status === 'dead'
    ) {
      this._told.delete(kernel);
      kernel.statusChanged.disconnect(this._onKernelStatus, this);
    }
  }

  private readonly _tracker: INotebookTracker;
  private readonly _fetchStatus: () => Promise<IStatusResponse>;
  private readonly _told = new WeakMap<Kernel.IKernelConnection, string>();
  private _current: KernelTracking | null = null;
  private _generation = 0;
  private _isDisposed = false;
}
