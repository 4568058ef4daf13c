// The Flash tile: the button, one line saying why it cannot be pressed yet, and where a config
// image goes (the boot stick, or a ticked drive of its own).
import * as act from "../actions";
import type { State } from "../store";
import { sentence } from "../logic";
import { ErrorText, Tile } from "./common";
import { FlashIcon } from "./icons";

export function FlashTile({ s }: { s: State }) {
  const reason = act.flashReason(s);
  return (
    <Tile id="tile-flash" step={3} icon={<FlashIcon />} title="Flash">
      <button type="button" id="flash-button" class="primary big" disabled={reason !== null} aria-describedby="flash-reason" onClick={act.flash}>
        Flash
      </button>
      <p id="flash-reason" class="reason" aria-live="polite">
        {reason ?? ""}
      </p>
      {s.prepared && s.config && <ConfigLayout s={s} />}
      <p class="hint">
        {s.settings.readBack ? "Every drive is read back to prove it." : "Read-back is off (Settings)."}
        {s.settings.eject ? " Drives are ejected when done." : ""}
      </p>
      <ErrorText id="error-step-flash" text={s.errors.flash} />
    </Tile>
  );
}

/** One stick for both, or the config on a stick of its own; one is not offered where the
 * engine says the image's release would not read it. */
function ConfigLayout({ s }: { s: State }) {
  const refused = s.prepared?.configOwnStick ?? null;
  return (
    <fieldset id="config-layout">
      <legend>Config image on</legend>
      <label title={refused ? sentence(refused) : undefined}>
        <input type="radio" name="layout" id="layout-one" checked={!s.twoSticks} disabled={refused !== null} onChange={() => act.setTwoSticks(false)} />
        the boot stick
        {refused && <span id="layout-why"> (not read there by this release)</span>}
      </label>
      <label>
        <input type="radio" name="layout" id="layout-two" checked={s.twoSticks} onChange={() => act.setTwoSticks(true)} />
        a stick of its own
      </label>
    </fieldset>
  );
}

