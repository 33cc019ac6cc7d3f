/**
 * Diff and review tabs, and the commands that open them.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  WidgetTracker,
  showErrorMessage
} from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ITranslator } from '@jupyterlab/translation';
import { ReadonlyPartialJSONObject, UUID } from '@lumino/coreutils';

import { createReview } from './api';
import { IDiffServices, ToolbarToggle, errorText } from './widgets/diffCommon';
import { DiffView } from './widgets/DiffView';
import { ReviewView } from './widgets/ReviewView';

/**
 * Command ids of the diff and review tabs.
 */
export namespace DiffCommandIDs {
  /** Open a diff tab; args `{a, b}` (asked for when missing). */
  export const openDiff = 'jupyter-mlops:open-diff';
  /** Diff a run (or any reference) against the current notebook. */
  export const diffAgainstRun = 'jupyter-mlops:diff-against-run';
  /** Open a review tab; args `{id}` (asked for when missing). */
  export const openReview = 'jupyter-mlops:open-review';
  /** Open a new review of a candidate and show it. */
  export const reviewCandidate = 'jupyter-mlops:review-candidate';
}

const PALETTE_CATEGORY = 'MLOps';

type DiffTab = MainAreaWidget<DiffView>;
type ReviewTab = MainAreaWidget<ReviewView>;

function stringArg(args: ReadonlyPartialJSONObject, name: string): string {
  const value = args[name];
  return typeof value === 'string' ? value.trim() : '';
}

/**
 * Ask the user for one line of text; null when cancelled or empty.
 */
async function askText(
  title: string,
  label: string,
  placeholder: string,
  okLabel: string
): Promise<string | null> {
  const result = await InputDialog.getText({
    title,
    label,
    placeholder,
    okLabel
  });
  const value = result.button.accept ? (result.value ?? '').trim() : '';
  return value === '' ? null : value;
}

export const diffPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlops:diff',
  description:
    'Notebook diff and review tabs rendered with nbdime: sources, outputs and images side by side.',
  autoStart: true,
  requires: [IRenderMimeRegistry, IEditorServices],
  optional: [ICommandPalette, INotebookTracker, ILayoutRestorer, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    editorServices: IEditorServices,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null,
    restorer: ILayoutRestorer | null,
    translator: ITranslator | null
  ): void => {
    const { commands, shell } = app;
    const services: IDiffServices = {
      rendermime,
      editorFactory: editorServices.factoryService.newInlineEditor.bind(
        editorServices.factoryService
      ),
      translator: translator ?? undefined
    };
    const diffs = new WidgetTracker<DiffTab>({
      namespace: 'jupyter-mlops-diff'
    });
    const reviews = new WidgetTracker<ReviewTab>({
      namespace: 'jupyter-mlops-review'
    });

    const openDiff = (
      a: string,
      b: string,
      ignoreOutputs: boolean,
      ignoreMetadata: boolean
    ): DiffTab => {
      const existing = diffs.find(w => w.content.a === a && w.content.b === b);
      if (existing) {
        shell.activateById(existing.id);
        return existing;
      }
      const content = new DiffView({
        a,
        b,
        services,
        ignoreOutputs,
        ignoreMetadata
      });
      const tab = new MainAreaWidget({ content });
      tab.id = `jupyter-mlops-diff-${UUID.uuid4()}`;
      tab.addClass('jp-mlops-diff-tab');
      tab.title.label = `Diff: ${a} ↔ ${b}`;
      tab.title.caption = `Notebook diff\nbase: ${a}\nremote: ${b}`;
      tab.title.closable = true;
      content.labelsChanged.connect((_, labels) => {
        tab.title.label = `Diff: ${labels.a.label} ↔ ${labels.b.label}`;
        tab.title.caption = `Notebook diff\nbase: ${labels.a.ref}\nremote: ${labels.b.ref}`;
      });
      tab.toolbar.addItem(
        'mlops-hide-outputs',
        new ToolbarToggle({
          label: 'Hide outputs',
          caption: 'Leave outputs out of the diff',
          checked: ignoreOutputs,
          testid: 'mlops-diff-hide-outputs',
          onChange: checked => {
            content.ignoreOutputs = checked;
            void diffs.save(tab);
          }
        })
      );
      tab.toolbar.addItem(
        'mlops-hide-metadata',
        new ToolbarToggle({
          label: 'Hide metadata',
          caption: 'Leave notebook and cell metadata out of the diff',
          checked: ignoreMetadata,
          testid: 'mlops-diff-hide-metadata',
          onChange: checked => {
            content.ignoreMetadata = checked;
            void diffs.save(tab);
          }
        })
      );
      void diffs.add(tab);
      shell.add(tab, 'main');
      shell.activateById(tab.id);
      return tab;
    };

    const openReview = (id: string): ReviewTab => {
      const existing = reviews.find(w => w.content.reviewId === id);
      if (existing) {
        shell.activateById(existing.id);
        return existing;
      }
      const content = new ReviewView({ id, services });
      const tab = new MainAreaWidget({ content });
      tab.id = `jupyter-mlops-review-${UUID.uuid4()}`;
      tab.addClass('jp-mlops-review-tab');
      tab.title.label = `Review ${id}`;
      tab.title.caption = `Review ${id}`;
      tab.title.closable = true;
      content.reviewChanged.connect((_, review) => {
        tab.title.label = `Review: ${review.candidate.label}`;
        tab.title.caption = `Review ${review.id}\ncandidate: ${review.candidate.ref}\nbase: ${review.base?.ref ?? 'empty notebook'}`;
      });
      void reviews.add(tab);
      shell.add(tab, 'main');
      shell.activateById(tab.id);
      return tab;
    };

    commands.addCommand(DiffCommandIDs.openDiff, {
      label: 'Notebook diff',
      caption:
        'Diff two notebook versions (runs, model versions, paths, git revisions)',
      execute: async args => {
        let a = stringArg(args, 'a');
        let b = stringArg(args, 'b');
        if (!a) {
          const asked = await askText(
            'Notebook diff',
            'Base: run id, models:/NAME/VERSION, models:/NAME@ALIAS, notebook path or git:REV:PATH',
            'run id or reference',
            'Next'
          );
          if (asked === null) {
            return;
          }
          a = asked;
        }
        if (!b) {
          const asked = await askText(
            'Notebook diff',
            `Compare ${a} with: run id, models:/NAME/VERSION, notebook path or git:REV:PATH`,
            'run id or reference',
            'Diff'
          );
          if (asked === null) {
            return;
          }
          b = asked;
        }
        return openDiff(
          a,
          b,
          args.ignoreOutputs === true,
          args.ignoreMetadata === true
        );
      }
    });

    const currentNotebookPath = (): string | null =>
      notebooks?.currentWidget?.context.path ?? null;

    commands.addCommand(DiffCommandIDs.diffAgainstRun, {
      label: 'Diff notebook against run…',
      caption:
        'Diff a tracked run (or any notebook reference) against the saved version of the current notebook',
      isEnabled: () => currentNotebookPath() !== null,
      execute: async () => {
        const path = currentNotebookPath();
        if (path === null) {
          return;
        }
        const ref = await askText(
          'Diff notebook against run',
          `Run id or reference to compare with the saved ${PathExt.basename(path)}`,
          'run id, models:/NAME/VERSION, models:/NAME@ALIAS or git:REV:PATH',
          'Diff'
        );
        if (ref === null) {
          return;
        }
        return commands.execute(DiffCommandIDs.openDiff, { a: ref, b: path });
      }
    });
    if (notebooks) {
      notebooks.currentChanged.connect(() => {
        commands.notifyCommandChanged(DiffCommandIDs.diffAgainstRun);
      });
    }

    commands.addCommand(DiffCommandIDs.openReview, {
      label: args =>
        args.id ? `Open review ${String(args.id)}` : 'Open review…',
      caption: 'Show a review: its diff, comments and decision',
      execute: async args => {
        let id = stringArg(args, 'id');
        if (!id) {
          const asked = await askText(
            'Open review',
            'Review id',
            'review id',
            'Open'
          );
          if (asked === null) {
            return;
          }
          id = asked;
        }
        return openReview(id);
      }
    });

    commands.addCommand(DiffCommandIDs.reviewCandidate, {
      label: 'Review candidate…',
      caption:
        'Open a review of a run or model version against its base (the champion, else the previous version)',
      execute: async args => {
        let candidate = stringArg(args, 'candidate');
        if (!candidate) {
          const asked = await askText(
            'Review candidate',
            'Candidate: run id, models:/NAME/VERSION or models:/NAME@ALIAS',
            'run id or model version',
            'Open review'
          );
          if (asked === null) {
            return;
          }
          candidate = asked;
        }
        const base = stringArg(args, 'base') || null;
        try {
          const review = await createReview(candidate, base);
          return openReview(review.id);
        } catch (error) {
          const { message, hint } = errorText(error);
          await showErrorMessage(
            'Cannot open a review',
            hint ? `${message}\n${hint}` : message
          );
          return;
        }
      }
    });

    if (palette) {
      for (const command of [
        DiffCommandIDs.diffAgainstRun,
        DiffCommandIDs.openReview,
        DiffCommandIDs.reviewCandidate
      ]) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
    }

    if (restorer) {
      void restorer.restore(diffs, {
        command: DiffCommandIDs.openDiff,
        args: tab => ({
          a: tab.content.a,
          b: tab.content.b,
          ignoreOutputs: tab.content.ignoreOutputs,
          ignoreMetadata: tab.content.ignoreMetadata
        }),
        name: tab => JSON.stringify([tab.content.a, tab.content.b])
      });
      void restorer.restore(reviews, {
        command: DiffCommandIDs.openReview,
        args: tab => ({ id: tab.content.reviewId }),
        name: tab => tab.content.reviewId
      });
    }
  }
};
