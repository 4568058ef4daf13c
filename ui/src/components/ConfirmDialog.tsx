// The confirmation before erasing: what is written (the checked image, or the engine's plan with
// the digest that vouches for the download), then each drive by model, size, path and identity.
import * as act from "../actions";
import { confirmationText } from "../logic";
import type { State } from "../store";
import { Modal } from "./common";

export function ConfirmDialog({ s }: { s: State }) {
  const c = s.confirm;
  return (
    <Modal id="confirm-dialog" open={c !== null} labelledBy="confirm-title" onCancel={() => act.answerConfirm(false)}>
      {c && (
        <>
          <h2 id="confirm-title">Erase and flash?</h2>
          <p id="confirm-text">{confirmationText(c.lines, c.drives)}</p>
          <div class="buttons">
            {/* The safe answer has the focus: Enter alone never erases a drive. */}
            <button type="button" id="confirm-no" autoFocus onClick={() => act.answerConfirm(false)}>
              Cancel
            </button>
            <button type="button" id="confirm-yes" class="danger" onClick={() => act.answerConfirm(true)}>
              Erase and flash
            </button>
          </div>
        </>
      )}
    </Modal>
  );
}
