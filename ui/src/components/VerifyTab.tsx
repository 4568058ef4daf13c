// Verify: read a drive (picked from the list) or an image file and compare it with a digest, a checksum file (an
// archive's checksum: the image inside it) or an image file. Nothing is written.
import * as act from "../actions";
import { driveName, formatBytes } from "../logic";
import type { State } from "../store";
import { Digest, ErrorText, ProgressLine, TextField } from "./common";

const KINDS = [
  ["digest", "A digest"],
  ["sidecar", "A checksum file (URL or path)"],
  ["image", "An image file"],
] as const;

export function VerifyTab({ s }: { s: State }) {
  const v = s.verify;
  const r = v.result;
  return (
    <section id="verify" role="tabpanel" aria-labelledby="tab-verify" class="card-wide">
      <div class="field">
        <label for="verify-drive">Drive to check</label>
        <select id="verify-drive" value={s.drives.some((d) => d.path === v.path) ? v.path : ""} onChange={(e) => act.editVerifyInput({ path: e.currentTarget.value })}>
          <option value="">{s.drives.length === 0 ? "No drives (Show all drives on Flash lists every drive)" : "Choose a drive, or a file below"}</option>
          {s.drives.map((d) => (
            <option key={d.path} value={d.path}>
              {driveName(d)} — {formatBytes(d.size)} — {d.path}
            </option>
          ))}
        </select>
      </div>
      <div class="row">
        <TextField id="verify-path" label="Or an image file (or a drive by its path)" value={v.path} placeholder="/dev/sdb or /home/me/disk.img" invalid={s.invalid === "verify-path"} onValue={(path) => act.editVerifyInput({ path })} />
        <button type="button" aria-label="Choose the file to check" onClick={() => void act.chooseVerifyFile()}>
          Choose…
        </button>
      </div>
      <fieldset class="choices">
        <legend>Compare it with</legend>
        {KINDS.map(([kind, label]) => (
          <span key={kind}>
            <input type="radio" name="expected" id={`expected-${kind}`} value={kind} checked={v.kind === kind} onChange={() => act.editVerifyInput({ kind })} />
            <label for={`expected-${kind}`}>{label}</label>
          </span>
        ))}
      </fieldset>
      <TextField id="verify-expected" label={{ digest: "Expected SHA-256", sidecar: "Checksum file", image: "Image file" }[v.kind]} value={v.expected} onValue={(expected) => act.editVerifyInput({ expected })} />
      {v.kind === "digest" && (
        <TextField id="verify-size" label="Bytes to check (for a drive: the image's size)" inputMode="numeric" value={v.size} invalid={s.invalid === "verify-size"} onValue={(size) => act.editVerifyInput({ size })} />
      )}
      <div class="buttons">
        <button type="button" id="verify-button" class="primary" disabled={v.running} onClick={() => void act.verify()}>
          Verify
        </button>
        {v.running && (
          <button type="button" id="cancel-verify" onClick={act.cancelVerify}>
            Cancel
          </button>
        )}
      </div>
      <div aria-live="polite">{v.line && <ProgressLine line={v.line} label="Progress of the check" id="verify-progress" />}</div>
      <ErrorText id="error-verify" text={s.errors.verify} />
      <div aria-live="polite">
        {r && (
          <>
            <p id="verify-result" class={`verdict ${r.match ? "good" : "bad"}`}>
              {r.match ? "✓ Matches" : "✗ Does not match"}
            </p>
            <p id="verify-detail">
              {r.path} · {formatBytes(r.size)} · expected from {r.expectedFrom}
            </p>
            <Digest id="verify-sha" label="SHA-256 read" hex={r.sha256} />
            {!r.match && <Digest id="verify-expected-sha" label="SHA-256 expected" hex={r.expectedSHA256} />}
          </>
        )}
      </div>
    </section>
  );
}
