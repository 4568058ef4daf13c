// Presentation logic, free of the DOM and of Tauri so it can be unit-tested.
import type { Bus, DigestSource, Drive, Ejected, ErrorKind, ProbeView, Progress, Stage, Summary, TargetReport } from "./api";
import type { DriveRun, Line, Run } from "./store";

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

/** The chosen image's size as the engine found it: "201.3 MB image", "at least …", or why not
 * yet (with the download's size when its server says it). */
export function foundSize(f: ProbeView): string {
  if (f.imageSize) return `${f.imageSize.exact ? "" : "at least "}${formatBytes(f.imageSize.bytes)} image`;
  const download = f.archiveSize !== null ? `${formatBytes(f.archiveSize)} to download; ` : "";
  return `${download}the image's size is known once it is decoded`;
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

/** What the flash checks the drive against, in full: serial, device number, disk sequence. */
export function identityText(d: Drive): string {
  const id = d.identity;
  return [id.serial ? `serial ${id.serial}` : "no serial", `device ${id.devnum}`, id.diskseq !== null ? `disk sequence ${id.diskseq}` : ""].filter(Boolean).join(", ");
}

/** A progress report as a line: stage, percent or bytes, rate, time left. */
export function progressLine(meter: Meter, p: Progress, now: number): Line {
  // A silent server: said as such, not as a speed frozen at its last value.
  if (p.waiting) return { text: waitingText(p.waiting), percent: p.total ? Math.min(100, (100 * p.done) / p.total) : null };
  const { percent, rate, eta } = meter.update(p, now);
  // Rounded down, as the large number is: 100 % only once it is all there.
  const parts = [stageLabel(p.stage), percent === null ? formatBytes(p.done) : `${Math.floor(percent)} %`];
  if (rate > 0) parts.push(`${formatBytes(rate)}/s`);
  if (p.skipped) parts.push(`${formatBytes(p.skipped)} already matched (not rewritten)`);
  const left = eta >= 1 ? formatDuration(eta) : "";
  if (left) parts.push(`${left} left`);
  return { text: parts.join(" · "), percent };
}

export function waitingText(seconds: number): string {
  return `Waiting for the server (${seconds} s)`;
}

/** A drive's outcome as its row ends. */
export function resultLine(r: TargetReport): Line {
  if (!r.ok) {
    if (r.errorKind === "cancelled") return { text: "Cancelled", percent: null, outcome: "bad" };
    return { text: `Failed — ${sentence((r.error ?? "failed").split(": ").slice(-1)[0])}`, percent: null, outcome: "bad" };
  }
  // What the drive already held was not written again, but it was read back like the rest.
  const held = r.bytesSkipped > 0 ? ` · ${formatBytes(r.bytesSkipped)} already matched (not rewritten)` : "";
  if (r.verifiedSHA256) {
    return { text: `✓ Verified — read back matches ${shortDigest(r.verifiedSHA256)}${held}`, percent: 100, outcome: "good" };
  }
  return { text: "Written, not read back", percent: 100, outcome: "good" };
}

/** What a drive that did not take the image holds now, in words; `null` when it took it. A
 * target the engine opened had its start wiped first and gets it back only once the rest is
 * written and read back (flash/writer.rs), so a failed or cancelled one is blank; one never
 * opened (`access: null`, or a flash refused before writing) is as it was. */
export function heldText(d: DriveRun, failure?: ErrorKind): string | null {
  if (d.report?.ok) return null;
  if (d.line.outcome !== "bad") return null;
  const untouched = d.report ? d.report.access === null : failure === "badInput";
  return untouched ? "Left as it was: nothing was written to it." : "Left blank: not bootable.";
}

/** The run's outcome in a few words: how many drives are verified, and how many are not. */
export function runOutcome(run: Run): string {
  const n = run.drives.length;
  const verified = run.drives.filter((d) => d.report?.ok && d.report.verifiedSHA256).length;
  const written = run.drives.filter((d) => d.report?.ok && !d.report.verifiedSHA256).length;
  const cancelled = run.drives.filter((d) => d.line.text === "Cancelled").length;
  const drives = (k: number) => `${k} drive${k === 1 ? "" : "s"}`;
  if (run.failure === "digestMismatch") return "The image is not the one its publisher published: nothing bootable was written";
  if (cancelled === n) return "Cancelled — the drives are blank, not bootable";
  if (verified === n) return `Done — ${drives(n)} verified`;
  if (verified + written === n) return `Done — ${drives(written)} written, not read back`;
  const failed = n - verified - written - cancelled;
  const parts = [verified + written > 0 ? `${drives(verified + written)} done` : "", cancelled > 0 ? `${cancelled} cancelled` : "", failed > 0 ? `${failed} failed` : ""];
  return `${parts.filter(Boolean).join(", ")} of ${n}`;
}

/** The buttons after a run: Retry the drives that did not take the image (the image is fine:
 * a drive failed, or was cancelled), another drive when some took it, or another image when the
 * image itself was refused (it would fail again). */
export function nextSteps(run: Run, lab: boolean): { retry: number; another: boolean; otherImage: boolean } {
  const badImage = run.failure === "digestMismatch" || run.failure === "badInput";
  // A drive refused for what it is (too small, read-only) would fail again: it gets no Retry.
  const failed = run.drives.filter((d) => !d.report?.ok && d.report?.errorKind !== "badInput").length;
  // A lab is planned whole: its nodes are flashed again from the lab's table, not one by one.
  const took = run.drives.filter((d) => d.report?.ok).length;
  return { retry: badImage || lab ? 0 : failed, another: !badImage && (lab || took > 0 || failed === 0), otherImage: badImage };
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

/** Rate and time left from successive reports of one stage and target: the rate over the last
 * few seconds (a stick's cache makes the first seconds look fast), and none before a second of
 * reports, so nobody reads "3.1 GB/s · 0 s left" at the start. */
export class Meter {
  private samples: { t: number; done: number }[] = [];
  private stage: Stage | null = null;
  static readonly WINDOW_MS = 3000;

  update(p: Progress, now: number): { percent: number | null; rate: number; eta: number } {
    const last = this.samples[this.samples.length - 1];
    if (this.stage !== p.stage || (last && p.done < last.done)) {
      this.stage = p.stage;
      this.samples = [];
    }
    this.samples.push({ t: now, done: p.done });
    while (this.samples.length > 2 && now - this.samples[1].t >= Meter.WINDOW_MS) this.samples.shift();
    const first = this.samples[0];
    const seconds = (now - first.t) / 1000;
    const rate = seconds >= 1 ? (p.done - first.done) / seconds : 0;
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
  /** Nothing the publisher published vouches for the checked image: the operator compares its
   * digests and ticks "I compared these digests". */
  mustCompare: boolean;
  /** A digest pasted to compare is none of those shown. */
  pastedMismatch: boolean;
  /** Checking the image failed (its error is in the Image tile). */
  checkFailed: boolean;
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
  if (!s.prepared && s.checkFailed) return "This image cannot be flashed: see why under Image, or choose another.";
  if (!s.prepared && s.mustCheck) return "Wait for the image to be checked.";
  if (!s.prepared && !s.streams) return "Choose an image.";
  if (s.prepared && s.pastedMismatch) return "The digest you pasted is none of those shown: check the image, or clear the field.";
  if (s.prepared && s.mustCompare && !s.confirmed) return "Compare the digests, then tick “I compared these digests”.";
  if (s.selected === 0) return "Choose a drive.";
  if (s.twoSticks && !s.twoSticks.configDrive) return "Mark the ticked drive that gets the config (Config).";
  if (s.twoSticks && s.selected < 2) return "Tick a second drive: one for the boot image, one for the config.";
  return null;
}

/** "e2117a4c…41d0c5f9": a digest's first and last 8 characters, for saying which one. */
export function shortDigest(hex: string): string {
  return hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-8)}` : hex;
}

/** The confirmation before writing, in plain words: what is written and how big, who vouches
 * for it, what else goes on the stick; each drive is a card of its own. `lab`: the number of
 * nodes, each with its own config (named in the details). */
export function confirmSummary(p: Summary, drives: Drive[], lab: number | null): { text: string; tone: "" | "good" | "warn" }[] {
  const size = p.size === null ? "its size is known once it is decoded" : p.sizeExact ? formatBytes(p.size) : `at least ${formatBytes(p.size)}`;
  const onto = drives.length === 1 ? "this drive" : `these ${drives.length} drives`;
  const lines: { text: string; tone: "" | "good" | "warn" }[] = [{ text: `Write ${p.name} (${size}) onto ${onto}${lab ? `, one per node of the lab's ${lab}` : ""}.`, tone: "" }];
  const { text: from, warn } = describeSource(p.digestSource, p.signedBy);
  lines.push(
    warn
      ? { text: "Nothing its publisher published vouches for this image: compare its SHA-256 (Details) with one you trust.", tone: "warn" }
      : { text: `It must match ${from}; if it does not, nothing bootable is written.`, tone: "good" },
  );
  if (p.configPartitionSHA256) {
    lines.push({ text: `The stick also gets your config, as a partition named cidata (SHA-256 ${shortDigest(p.configPartitionSHA256)}).`, tone: "" });
  }
  if (lab) lines.push({ text: "Each node's stick also gets that node's own config (Details).", tone: "" });
  if (p.configSticks.length > 0) {
    lines.push({ text: `The config image goes onto ${p.configSticks.join(", ")}, a stick of its own.`, tone: "" });
  }
  lines.push({ text: `Everything on ${drives.length === 1 ? "it" : "them"} will be erased${drives.some((d) => d.mountpoints.length > 0) ? "; mounted partitions are unmounted first" : ""}.`, tone: "" });
  return lines;
}

/** How the flash knows the drive is the one chosen, in words. */
export function sameDrive(d: Drive): string {
  const id = d.identity;
  return id.serial ? `the same drive you chose: serial ${id.serial}` : `the same drive you chose: no serial, so checked by device ${id.devnum}${id.diskseq !== null ? ` and disk sequence ${id.diskseq}` : ""}`;
}

/** An engine message as a sentence for the window: capital first letter, final period, without
 * the operating system's error numbers ("(os error 2)"). */
export function sentence(text: string): string {
  const t = text.replace(/ \(os error \d+\)/g, "").trim();
  if (t === "") return "";
  // A URL or a path keeps its spelling ("http://…", not "Http://…").
  const capital = /^([a-z][a-z0-9+.-]*:\/\/|\/)/.test(t) ? t : t[0].toUpperCase() + t.slice(1);
  return /[.!?)]$/.test(capital) ? capital : `${capital}.`;
}
