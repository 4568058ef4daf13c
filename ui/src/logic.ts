// Presentation logic, free of the DOM and of Tauri so it can be unit-tested.
import type { Bus, DigestSource, Drive, Ejected, Progress, Stage, TargetReport } from "./api";
import type { Line } from "./store";

/** "30.8 GB": decimal units, as printed on drive labels. */
export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

const STAGES: Record<Stage, string> = {
  download: "Downloading",
  checkCache: "Checking the cached download",
  decompress: "Decompressing",
  checkImage: "Checking the cached image",
  hashImage: "Hashing the image",
  write: "Writing",
  readBack: "Reading back",
};

export function stageLabel(stage: Stage): string {
  return STAGES[stage];
}

/** Lower-case hex without spaces: what digests are compared as. */
export function normalizeDigest(text: string): string {
  return text.replace(/\s+/g, "").toLowerCase();
}

export type DigestCheck = "empty" | "invalid" | "match" | "mismatch";

/** What a pasted digest says about the shown one. */
export function checkDigest(pasted: string, shown: string): DigestCheck {
  const p = normalizeDigest(pasted);
  if (p === "") return "empty";
  if (!/^[0-9a-f]{64}$/.test(p)) return "invalid";
  return p === normalizeDigest(shown) ? "match" : "mismatch";
}

/** Where the expected digest came from, in words (and who signed it, when signed); `warn` when
 * nothing vouches for the image. */
export function describeSource(source: DigestSource, signedBy?: string | null): { text: string; warn: boolean } {
  const described = describeUnsigned(source);
  return signedBy ? { ...described, text: `${described.text}, signed by ${signedBy}` } : described;
}

function describeUnsigned(source: DigestSource): { text: string; warn: boolean } {
  switch (source) {
    case "sidecar":
      return { text: "the publisher's .sha256 file", warn: false };
    case "sha256sum":
      return { text: "the publisher's .sha256sum file", warn: false };
    case "sha256sums":
      return { text: "the publisher's SHA256SUMS file", warn: false };
    case "index":
      return { text: "the publisher's index", warn: false };
    case "signature":
      return { text: "the factory's signature", warn: false };
    case "sha512":
      return { text: "the publisher's .sha512 file", warn: false };
    case "flag":
      return { text: "the digest you typed", warn: false };
    case "unverified":
      return { text: "none: nothing the publisher published vouches for this image", warn: true };
  }
}

/** What a person calls a drive: vendor and model, or what kind of device it is. */
export function driveName(d: Drive): string {
  // A vendor given only as a PCI/USB id ("0x1af4") names nothing a person knows.
  const vendor = /^0x[0-9a-f]+$/i.test(d.vendor.trim()) ? "" : d.vendor;
  const kinds: Partial<Record<Bus, string>> = { loop: "Loop device", virtual: "Virtual disk" };
  const unnamed = kinds[d.bus] ?? "Unnamed drive";
  return `${vendor} ${d.model}`.trim() || unnamed;
}

/** One drive in a line: name, size, bus, path. */
export function describeDrive(d: Drive): string {
  return `${driveName(d)} — ${formatBytes(d.size)}, ${d.bus} — ${d.path}`;
}

/** What the flash checks the drive against, in words: serial, device number, disk sequence. */
export function identityText(d: Drive): string {
  const id = d.identity;
  return [
    id.serial ? `serial ${id.serial}` : "no serial",
    `device ${id.devnum}`,
    id.diskseq !== null ? `disk sequence ${id.diskseq}` : "",
  ]
    .filter(Boolean)
    .join(", ");
}

/** A progress report as a line: stage, percent or bytes, rate, time left. */
export function progressLine(meter: Meter, p: Progress, now: number): Line {
  const { percent, rate, eta } = meter.update(p, now);
  const parts = [stageLabel(p.stage), percent === null ? formatBytes(p.done) : `${percent.toFixed(0)} %`];
  if (rate > 0) parts.push(`${formatBytes(rate)}/s`);
  if (p.skipped) parts.push(`${formatBytes(p.skipped)} already on the drive`);
  const left = formatDuration(eta);
  if (left) parts.push(`${left} left`);
  return { text: parts.join(" · "), percent };
}

/** A drive's outcome as its row ends. */
export function resultLine(r: TargetReport): Line {
  if (!r.ok) {
    if (r.errorKind === "cancelled") return { text: "Cancelled", percent: null, outcome: "bad" };
    return { text: `Failed — ${sentence((r.error ?? "failed").split(": ").slice(-1)[0])}`, percent: null, outcome: "bad" };
  }
  // What the drive already held was not written again, but it was read back like the rest.
  const held = r.bytesSkipped > 0 ? ` · ${formatBytes(r.bytesSkipped)} were already on it` : "";
  if (r.verifiedSHA256) {
    return { text: `✓ Verified — read back matches ${shortDigest(r.verifiedSHA256)}${held}`, percent: 100, outcome: "good" };
  }
  return { text: "Written, not read back", percent: 100, outcome: "good" };
}

/** What ejecting did, for the drive's row. */
export function ejectText(e: Ejected): string {
  switch (e.kind) {
    case "poweredOff":
      return "Ejected — you can unplug it.";
    case "detached":
      return "Detached — the loop device is gone; its file holds the image.";
    case "kept":
      return sentence(e.why);
  }
}

/** Rate and time left from successive reports of one stage and target. */
export class Meter {
  private start: { t: number; done: number } | null = null;
  private stage: Stage | null = null;

  update(p: Progress, now: number): { percent: number | null; rate: number; eta: number } {
    if (this.stage !== p.stage || this.start === null || p.done < this.start.done) {
      this.stage = p.stage;
      this.start = { t: now, done: p.done };
    }
    const seconds = (now - this.start.t) / 1000;
    const rate = seconds > 0 ? (p.done - this.start.done) / seconds : 0;
    const percent = p.total ? Math.min(100, (100 * p.done) / p.total) : null;
    const eta = p.total && rate > 0 ? (p.total - p.done) / rate : NaN;
    return { percent, rate, eta };
  }
}

/** What the Flash button knows of the window. */
export interface FlashState {
  /** An image was checked and its digests shown. */
  prepared: boolean;
  /** "I have checked these digests" is ticked. */
  confirmed: boolean;
  /** The image can be flashed straight from its source (its digest is confirmed in the
   * confirmation instead), and enough of the source is given to try. */
  streams: boolean;
  /** The image must be checked before writing (the setting, or a source made into files). */
  mustCheck: boolean;
  selected: number;
  busy: boolean;
  /** Two sticks: the config goes onto a ticked drive of its own; whether one is chosen. */
  twoSticks?: { configDrive: boolean };
}

/** Why Flash cannot be pressed yet, in one line; `null` when it can. */
export function flashBlocker(s: FlashState): string | null {
  if (s.busy) return "Busy: wait for the current step to finish, or cancel it.";
  if (!s.prepared && s.mustCheck) return "Check the image first, then compare its digests.";
  if (!s.prepared && !s.streams) return "Choose an image.";
  if (s.prepared && !s.confirmed) return "Compare the digests, then tick “I compared these digests”.";
  if (s.selected === 0) return "Choose a drive.";
  if (s.twoSticks && !s.twoSticks.configDrive) return "Mark the ticked drive that gets the config (Config).";
  if (s.twoSticks && s.selected < 2) return "Tick a second drive: one for the boot image, one for the config.";
  return null;
}

/** "e2117a4c…41d0c5f9": a digest's first and last 8 characters, for saying which one. */
export function shortDigest(hex: string): string {
  return hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-8)}` : hex;
}

/** The confirmation shown before writing: what is written (`what`: a checked image's line, or
 * the engine's plan), then each drive's model, size and path. */
export function confirmationText(what: string[], drives: Drive[]): string {
  const lines = drives.map((d) => `• ${describeDrive(d)} (${identityText(d)})`);
  const mounted = drives.some((d) => d.mountpoints.length > 0);
  return [
    ...what,
    `Everything on ${drives.length === 1 ? "this drive" : "these drives"} will be erased:`,
    ...lines,
    mounted ? "Mounted partitions will be unmounted first." : "",
  ]
    .filter(Boolean)
    .join("\n");
}

/** An engine message as a sentence for the window: capital first letter, final period, without
 * the operating system's error numbers ("(os error 2)"). */
export function sentence(text: string): string {
  const t = text.replace(/ \(os error \d+\)/g, "").trim();
  if (t === "") return "";
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?)]$/.test(capital) ? capital : `${capital}.`;
}
