// The confirmation before erasing, in plain words: what is written, who vouches for it, what else
// goes on the stick, each drive as a card ("the same drive you chose"); the engine's full plan
// (every digest, the image kind, each drive's identity) behind Details.
import { useState } from "preact/hooks";
import * as act from "../actions";
import type { DriveRow } from "../api";
import { confirmSummary, describeDrive, driveName, formatBytes, identityText, sameDrive } from "../logic";
import type { State } from "../store";
import { Modal } from "./common";
import { DriveIcon } from "./icons";

export function ConfirmDialog({ s }: { s: State }) {
  const c = s.confirm;
  return (
    <Modal id="confirm-dialog" open={c !== null} labelledBy="confirm-title" onCancel={() => act.answerConfirm(false)}>
      {c && <Question c={c} />}
    </Modal>
  );
}

function Question({ c }: { c: NonNullable<State["confirm"]> }) {
  const drives = c.drives as DriveRow[];
  // A fixed disk may hold the operator's data: erasing it takes a tick of its own.
  const fixed = drives.filter((d) => d.fixed);
  const [fixedOk, setFixedOk] = useState(false);
  return (
    <>
      <h2 id="confirm-title">Erase and flash?</h2>
      <div id="confirm-text">
        {c.warnings.map((w, i) => (
          <p key={`w${i}`} class="warning">
            {w}
          </p>
        ))}
        {confirmSummary(c.summary, drives, c.lab).map((l, i) => (
          <p key={i} class={l.tone === "good" ? "badge good" : l.tone === "warn" ? "badge warn" : ""}>
            {l.text}
          </p>
        ))}
        <ul id="confirm-drives" aria-label="Drives to erase">
          {drives.map((d) => (
            <li key={d.path} class="card">
              <DriveIcon bus={d.bus} class="drive-icon" />
              <span class="text">
                <span class="name">{driveName(d)}</span>
                <span class="meta">
                  {d.path} · {sameDrive(d)}
                </span>
              </span>
              <span class="size">{formatBytes(d.size)}</span>
            </li>
          ))}
        </ul>
      </div>
      <details id="confirm-details">
        <summary>Details</summary>
        <ul>
          {c.lines.map((l, i) => (
            <li key={i}>{l}</li>
          ))}
          {drives.map((d) => (
            <li key={d.path}>
              {describeDrive(d)} ({identityText(d)})
            </li>
          ))}
        </ul>
      </details>
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
