// The Flash tile: the button, and one line saying why it cannot be pressed yet.
import * as act from "../actions";
import type { State } from "../store";
import { ErrorText, Tile } from "./common";

export function FlashTile({ s }: { s: State }) {
  const reason = act.flashReason(s);
  const configAlone = s.prepared && s.config && !s.form.cfgOneStick;
  return (
    <Tile id="tile-flash" title="Flash">
      <button type="button" id="flash-button" class="primary big" disabled={reason !== null} aria-describedby="flash-reason" onClick={act.flash}>
        Flash
      </button>
      <p id="flash-reason" class="reason" aria-live="polite">
        {reason ?? ""}
      </p>
      {configAlone && (
        <button type="button" id="flash-config-button" disabled={reason !== null} onClick={() => void act.flashChecked(true)}>
          Write the config image
        </button>
      )}
      <p class="hint">
        {s.settings.readBack ? "Every drive is read back to prove it." : "Read-back is off (Settings)."}
        {s.settings.eject ? " Drives are ejected when done." : ""}
      </p>
      <ErrorText id="error-step-flash" text={s.errors.flash} />
    </Tile>
  );
}
