// The Image tile: choose a file (or drop one), or one of the other sources; the chosen image's
// name and origin, and what the engine found when it was chosen (its release, its size, what
// vouches for it); checking it, when it is checked first, with its bar and Cancel.
import * as act from "../actions";
import { sourceGiven, sourceTitle } from "../source";
import type { Kind, State } from "../store";
import { describeSource, foundSize, sentence } from "../logic";
import { ErrorText, ProgressLine, Tile } from "./common";
import { ImageIcon } from "./icons";

const OTHER: [Kind, string][] = [
  ["file", "Path"],
  ["url", "URL"],
  ["talos", "Talos Factory"],
  ["incus", "IncusOS"],
  ["talosBuild", "labctl config"],
  ["lab", "Lab file"],
];

export function ImageTile({ s }: { s: State }) {
  const given = sourceGiven(s.form);
  const title = sourceTitle(s.form);
  return (
    <Tile id="tile-image" step={1} icon={<ImageIcon />} title="Image" busy={s.check !== null}>
      {given ? (
        <div class="chosen">
          <p class="name" id="image-name" title={title.name}>
            {title.name}
          </p>
          <p class="from" title={title.from}>
            {title.from}
          </p>
          {/* What the probe found, until checking it proves more (the digest card) or fails. */}
          {s.found && !s.prepared && !s.errors.image && <Found s={s} />}
          <button type="button" id="change-image" onClick={() => act.editSource(s.form.kind)}>
            Change…
          </button>
        </div>
      ) : (
        <button type="button" id="choose-image" class="primary big" onClick={() => void act.chooseImageFile()}>
          Choose image…
        </button>
      )}
      <p class="links" aria-label="Other sources">
        {OTHER.map(([kind, label], i) => (
          <>
            {i > 0 && " · "}
            <button type="button" class="link" id={`source-${kind}`} onClick={() => act.editSource(kind)}>
              {label}
            </button>
          </>
        ))}
      </p>
      {!given && <p class="hint">or drop an image file on the window</p>}
      {s.check && (
        <div aria-live="polite">
          <ProgressLine line={s.check} label="Progress of checking the image" id="check-progress" />
          <button type="button" id="cancel-check" onClick={act.cancelJob}>
            Cancel
          </button>
        </div>
      )}
      <ErrorText id="error-step-image" text={s.errors.image} />
    </Tile>
  );
}

/** What the engine learnt of the chosen image before anything was downloaded. */
function Found({ s }: { s: State }) {
  const f = s.found!;
  const vouch = describeSource(f.digestSource, f.signedBy);
  return (
    <div id="image-found">
      <p class="found-size">
        {f.version ? `${f.version} · ` : ""}
        {foundSize(f)}
      </p>
      {/* Nothing is checked yet: what will vouch, said as such (green comes with a match). */}
      <p class={vouch.warn ? "badge warn" : "hint"} id="image-vouched">
        {vouch.warn ? "⚠ No published checksum" : `Will be checked against ${vouch.text}`}
      </p>
      {f.warnings.map((w, i) => (
        <p key={i} class="warning" id={`found-warning-${i}`}>
          {sentence(w)}
        </p>
      ))}
    </div>
  );
}
