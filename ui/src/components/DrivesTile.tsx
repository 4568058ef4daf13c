// The Drives tile: one card per drive (its picture, name, size, bus, path) to tick, with a badge saying why
// a drive cannot take the image. Fixed disks and loop devices only behind "Show all drives". With
// two sticks, a ticked drive is marked as the config stick.
import * as act from "../actions";
import type { DriveRow } from "../api";
import { driveName, formatBytes } from "../logic";
import type { State } from "../store";
import { Check, ErrorText, Tile } from "./common";
import { DriveIcon, UsbIcon } from "./icons";

export function DrivesTile({ s }: { s: State }) {
  const two = act.usesTwoSticks(s);
  const lab = s.form.kind === "lab";
  return (
    <Tile id="tile-drives" step={2} icon={<UsbIcon />} title="Drives">
      {/* Before the list: drives it brings in come after it in Tab order. */}
      <Check id="show-all" label="Show all drives" checked={s.showAll} onCheck={act.setShowAll} />
      <ul id="drives" aria-label="Drives">
        {s.drives.length === 0 && <li class="empty">No removable drives. Plug in a USB stick or SD card.</li>}
        {s.drives.map((d) => (
          <DriveCard key={d.path} d={d} selected={s.selected.includes(d.path)} configStick={two ? s.configDrive === d.path : null} lab={lab} />
        ))}
      </ul>
      {lab && <p class="hint">A lab: each node takes its drive in the table below (a stick plugged in now goes to the next node without one).</p>}
      {s.showAll && (
        <p id="show-all-warning" class="warning">
          Fixed disks may hold your data. Choose with care.
        </p>
      )}
      <ErrorText id="error-step-drive" text={s.errors.drive} />
    </Tile>
  );
}

/** `configStick`: two sticks, whether this drive is the one for the config (`null`: one stick). */
function DriveCard({ d, selected, configStick, lab }: { d: DriveRow; selected: boolean; configStick: boolean | null; lab: boolean }) {
  const id = `drive-${d.path.replace(/\W/g, "-")}`;
  const badges = [d.unsuitable?.badge, d.fixed && !d.unsuitable ? "Fixed disk" : null].filter(Boolean);
  return (
    <li class={`card ${selected ? "selected" : ""} ${d.unsuitable ? "unsuitable" : ""}`}>
      <input
        type="checkbox"
        id={id}
        value={d.path}
        checked={selected && !lab}
        disabled={d.unsuitable !== null || lab}
        aria-describedby={d.unsuitable ? `${id}-why` : undefined}
        onChange={(e) => act.toggleDrive(d.path, e.currentTarget.checked)}
      />
      <label for={id}>
        <DriveIcon bus={d.bus} class="drive-icon" />
        <span class="text">
          <span class="name">{driveName(d)}</span>
          {/* Two sticks of one model differ by serial. */}
          <span class="meta">
            {d.bus} · {d.path}
            {d.serial ? ` · serial ${d.serial}` : ""}
          </span>
          {badges.map((b) => (
            <span key={b} class={`badge ${d.unsuitable ? "bad" : "warn"}`}>
              {b}
            </span>
          ))}
        </span>
        <span class="size">{formatBytes(d.size)}</span>
      </label>
      {configStick !== null && selected && (
        <label class="role">
          <input type="radio" name="config-stick" id={`${id}-config`} checked={configStick} onChange={() => act.setConfigDrive(d.path)} />
          Config
        </label>
      )}
      {d.unsuitable && (
        <span id={`${id}-why`} class="sr-only">
          {d.unsuitable.reason}
        </span>
      )}
    </li>
  );
}
