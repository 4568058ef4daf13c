// The confirmation before erasing: what is written (the checked image, or the engine's plan with
// the digest that vouches for the download), then each drive by model, size, path and identity.
import { useState } from "preact/hooks";
import * as act from "../actions";
import type { DriveRow } from "../api";
import { confirmationText } from "../logic";
import type { State } from "../store";
import { Modal } from "./common";

export function ConfirmDialog({ s }: { s: State }) {
  const c = s.confirm;
  return (
    <Modal id="confirm-dialog" open={c !== null} labelledBy="confirm-title" onCancel={() => act.answerConfirm(false)}>
      {c && <Question lines={c.lines} drives={c.drives as DriveRow[]} />}
    </Modal>
  );
}

function Question({ lines, drives }: { lines: string[]; drives: DriveRow[] }) {
  // A fixed disk may hold the operator's data: erasing it takes a tick of its own.
  const fixed = drives.filter((d) => d.fixed);
  const [fixedOk, setFixedOk] = useState(false);
  return (
    <>
      <h2 id="confirm-title">Erase and flash?</h2>
      <p id="confirm-text">{confirmationText(lines, drives)}</p>
      {fixed.length > 0 && (
        <div class="warning">
          <p>
            {fixed.map((d) => d.path).join(", ")} {fixed.length === 1 ? "is a fixed disk" : "are fixed disks"}, not
            removable media: {fixed.length === 1 ? "it" : "they"} may hold your data.
          </p>
          <div class="check">
            <input id="confirm-fixed" type="checkbox" checked={fixedOk} onChange={(e) => setFixedOk(e.currentTarget.checked)} />
            <label for="confirm-fixed">Erase {fixed.length === 1 ? "this fixed disk" : "these fixed disks"}</label>
          </div>
        </div>
      )}
      <div class="buttons">
        {/* The safe answer has the focus: Enter alone never erases a drive. */}
        <button type="button" id="confirm-no" autoFocus onClick={() => act.answerConfirm(false)}>
          Cancel
        </button>
        <button type="button" id="confirm-yes" class="danger" disabled={fixed.length > 0 && !fixedOk} onClick={() => act.answerConfirm(true)}>
          Erase and flash
        </button>
      </div>
    </>
  );
}
