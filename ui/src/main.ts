// The window: four steps (image, check, drive, flash), a verify mode and settings. Every action is
// a command of the app; this file only presents.
import { open } from "@tauri-apps/plugin-dialog";
import { getCurrentWebview } from "@tauri-apps/api/webview";
import {
  api,
  errorMessage,
  newJob,
  type Drive,
  type Prepared,
  type Progress,
  type SourceSpec,
  type TargetReport,
} from "./api";
import {
  Meter,
  canFlash,
  flashBlocker,
  imageLine,
  checkDigest,
  confirmationText,
  describeDrive,
  sentence,
  shortDigest,
  describeSource,
  formatBytes,
  formatDuration,
  stageLabel,
} from "./logic";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const input = (id: string) => $<HTMLInputElement>(id);
const trimmed = (id: string) => input(id).value.trim();
const optional = (id: string) => trimmed(id) || null;

const state = {
  prepared: null as Prepared | null,
  configImage: null as { path: string; sha256: string; size: number } | null,
  drives: new Map<string, Drive>(),
  selected: new Set<string>(),
  busy: false,
  job: 0,
  /** Bumped whenever the source changes: a Prepare started for an older source is discarded. */
  source: 0,
};

/** Shows an error inside the part of the window it belongs to (a step, a tab), where the
 * button that was pressed is; `#message` only for the window itself (drive watch, start-up). */
function say(text: string, place = "message") {
  $(place === "message" ? "message" : `error-${place}`).textContent = sentence(text);
  // The field the step's error is about, for assistive technology and the eye.
  const field = { "step-image": sourceField(), verify: "verify-path" }[place];
  if (field) input(field).setAttribute("aria-invalid", "true");
}

/** Clears every shown error: each action starts with a clean window. */
function clearErrors() {
  for (const el of document.querySelectorAll<HTMLElement>("[id^=error-]")) el.textContent = "";
  for (const el of document.querySelectorAll<HTMLElement>("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** The field that names the chosen source, if it has one. */
function sourceField(): string | undefined {
  return { file: "file-path", url: "url", talos: "talos-version", talosBuild: "build-config" }[sourceKind()];
}

// Tabs: one Tab stop for the tab list; the arrow keys move between tabs (WAI-ARIA tabs).
const TABS = ["flash", "verify", "settings"];
function selectTab(tab: string) {
  for (const other of TABS) {
    const button = $(`tab-${other}`);
    button.setAttribute("aria-selected", String(other === tab));
    button.tabIndex = other === tab ? 0 : -1;
    $(other).hidden = other !== tab;
  }
  $(`tab-${tab}`).focus();
  clearErrors();
  if (tab === "settings") void showSettings();
}
for (const tab of TABS) {
  const button = $(`tab-${tab}`);
  button.addEventListener("click", () => selectTab(tab));
  button.addEventListener("keydown", (e) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (step === undefined) return;
    e.preventDefault();
    selectTab(TABS[(TABS.indexOf(tab) + step + TABS.length) % TABS.length]);
  });
}

// 1. Image: paths typed, chosen in the file chooser, or dropped on the window.
for (const button of document.querySelectorAll<HTMLButtonElement>("[data-choose]")) {
  button.addEventListener("click", async () => {
    const place = button.closest("fieldset, section")?.id ?? "message";
    const chosen = await open({ multiple: false, directory: false }).catch((e) => {
      say(errorMessage(e), place);
      return null;
    });
    if (typeof chosen === "string") {
      input(button.dataset.choose!).value = chosen;
      if (button.closest("#step-image")) sourceChanged();
    }
  });
}
void getCurrentWebview()
  .onDragDropEvent((e) => {
    if (e.payload.type === "drop" && e.payload.paths.length > 0) {
      document.querySelector<HTMLInputElement>('input[name="kind"][value="file"]')!.click();
      input("file-path").value = e.payload.paths[0];
      sourceChanged();
    }
  })
  .catch((e) => say(`Dropping files is unavailable: ${errorMessage(e)}`));

function sourceKind(): string {
  return (document.querySelector<HTMLInputElement>('input[name="kind"]:checked')?.value) ?? "file";
}
for (const radio of document.querySelectorAll<HTMLInputElement>('input[name="kind"]')) {
  radio.addEventListener("change", () => {
    for (const el of document.querySelectorAll<HTMLElement>("[data-kind]")) {
      el.hidden = el.dataset.kind !== sourceKind();
    }
    for (const el of document.querySelectorAll<HTMLElement>("[data-kind-not]")) {
      el.hidden = el.dataset.kindNot === sourceKind();
    }
  });
}

/** Forgets the prepared image whenever anything about the source changes, so Flash is never
 * armed with an image other than the one the window shows; a Prepare under way is cancelled. */
function sourceChanged() {
  state.source++;
  if (state.busy && !$("step-prepare").hidden) void api.cancel(state.job);
  state.prepared = null;
  state.configImage = null;
  input("confirm-digests").checked = false;
  input("paste-digest").value = "";
  $("paste-result").textContent = "";
  for (const id of ["image-sha", "archive-sha", "config-sha", "digest-source"]) $(id).textContent = "";
  $("digests").hidden = true;
  $("step-prepare").hidden = true;
  $("prepare-progress").replaceChildren();
  $("flash-progress").replaceChildren();
  $("results").replaceChildren();
  $("stream-result").textContent = "";
  $("after-flash").hidden = true;
  $("flash-config-button").hidden = true;
  clearErrors();
  updateFlashButton();
}
$("step-image").addEventListener("input", sourceChanged);
$("step-image").addEventListener("change", sourceChanged);

$("load-versions").addEventListener("click", async () => {
  clearErrors();
  try {
    const versions = await api.talosVersions(trimmed("factory-url"));
    // Suggestions only: a version can always be typed (offline, or one the list lacks).
    $("talos-versions").replaceChildren(
      ...versions.map((v) => new Option(v.prerelease ? `${v.version} (pre-release)` : v.version, v.version)),
    );
    const newest = versions.find((v) => !v.prerelease);
    if (!trimmed("talos-version") && newest) input("talos-version").value = newest.version;
    await loadExtensions();
  } catch (e) {
    say(errorMessage(e), "step-image");
  }
});
$("talos-version").addEventListener("change", () => void loadExtensions().catch((e) => say(errorMessage(e), "step-image")));

async function loadExtensions() {
  const version = trimmed("talos-version");
  if (!version) return;
  const list = await api.talosExtensions(trimmed("factory-url"), version);
  const box = $("talos-extensions");
  box.replaceChildren(box.querySelector("legend")!);
  for (const ext of list) {
    const label = document.createElement("label");
    const check = document.createElement("input");
    check.type = "checkbox";
    check.value = ext.name;
    label.title = ext.description;
    label.append(check, ` ${ext.name.replace(/^siderolabs\//, "")}`);
    box.append(label);
  }
}

/** The Settings choice "Check the image's digest before writing": download and decompress
 * first (Prepare) instead of flashing straight from the source. Kept in this window's storage. */
const CHECK_FIRST = "labflash.checkFirst";
input("check-first").checked = localStorage.getItem(CHECK_FIRST) === "1";
input("check-first").addEventListener("change", () => {
  localStorage.setItem(CHECK_FIRST, input("check-first").checked ? "1" : "0");
  updateFlashButton();
});

/** Whether the chosen source can be flashed straight from where it is (the CLI's `flash
 * URL|FILE`): unless it must be checked first, once enough of it is given. */
function streams(): boolean {
  if (mustCheck()) return false;
  switch (sourceKind()) {
    case "file":
      return trimmed("file-path") !== "";
    case "url":
      return trimmed("url") !== "";
    case "talos":
      return trimmed("talos-version") !== "";
    case "incus":
      return true;
    default:
      return false;
  }
}

/** Whether the image must be checked (prepared) before writing: the setting says so, or the
 * source is made into files first (a labctl build, a Talos config, an IncusOS seed). */
function mustCheck(): boolean {
  return (
    input("check-first").checked ||
    trimmed("cfg-user-data") !== "" ||
    sourceKind() === "talosBuild" ||
    (sourceKind() === "incus" && trimmed("incus-seed") !== "")
  );
}

/** The largest image accepted, in bytes, from the GiB field. */
function maxImageSize(): number {
  const gib = Number(trimmed("max-image-gib") || "4");
  if (!(gib > 0)) throw new Error("The largest image size must be a number of GiB above 0.");
  return Math.round(gib * 2 ** 30);
}

function sourceSpec(): SourceSpec {
  const sha256 = optional("typed-digest");
  switch (sourceKind()) {
    case "url":
      return { kind: "url", url: trimmed("url"), sha256, allowUnverified: input("allow-unverified").checked };
    case "talos":
      return {
        kind: "talos",
        factoryUrl: trimmed("factory-url"),
        version: trimmed("talos-version"),
        extensions: optional("talos-schematic")
          ? []
          : [...document.querySelectorAll<HTMLInputElement>("#talos-extensions input:checked")].map((c) => c.value),
        kernelArgs: optional("talos-schematic") ? [] : trimmed("talos-kernel-args").split(/\s+/).filter(Boolean),
        schematic: optional("talos-schematic"),
        platform: $<HTMLSelectElement>("talos-platform").value,
        arch: $<HTMLSelectElement>("talos-arch").value,
        secureboot: input("talos-secureboot").checked,
        format: $<HTMLSelectElement>("talos-format").value,
        sha256,
        allowUnverified: false,
      };
    case "incus":
      return {
        kind: "incus",
        indexUrl: trimmed("incus-index"),
        baseUrl: trimmed("incus-base"),
        channel: $<HTMLSelectElement>("incus-channel").value,
        arch: $<HTMLSelectElement>("incus-arch").value,
        seed: optional("incus-seed"),
      };
    case "talosBuild":
      return { kind: "talosBuild", config: trimmed("build-config") };
    default:
      return { kind: "file", path: trimmed("file-path"), sha256 };
  }
}

/** A progress line: updated by reports, then ended with what happened, after which late
 * reports no longer move it. */
type ProgressView = ((p: Progress) => void) & { end: (text: string, outcome: "good" | "bad") => void };

function progressView(container: HTMLElement, key: string): ProgressView {
  const meter = new Meter();
  let ended = false;
  const line = document.createElement("div");
  line.dataset.key = key;
  const label = document.createElement("span");
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.setAttribute("aria-label", key ? `Progress of ${key}` : "Progress");
  line.append(label, bar);
  container.append(line);
  const view = (p: Progress) => {
    if (ended) return;
    const { percent, rate, eta } = meter.update(p, performance.now());
    if (percent === null) bar.removeAttribute("value");
    else bar.value = percent;
    const parts = [stageLabel(p.stage), percent === null ? formatBytes(p.done) : `${percent.toFixed(0)} %`];
    if (rate > 0) parts.push(`${formatBytes(rate)}/s`);
    const left = formatDuration(eta);
    if (left) parts.push(`${left} left`);
    label.textContent = `${key ? key + ": " : ""}${parts.join(" · ")} `;
    line.dataset.stage = p.stage;
  };
  view.end = (text: string, outcome: "good" | "bad") => {
    ended = true;
    if (outcome === "good") bar.value = 100;
    else bar.hidden = true;
    label.textContent = `${key ? key + ": " : ""}${text} `;
    line.dataset.stage = "done";
    line.className = outcome;
  };
  return view;
}

$("prepare").addEventListener("click", async () => {
  clearErrors();
  const source = state.source;
  state.prepared = null;
  state.configImage = null;
  input("confirm-digests").checked = false;
  input("paste-digest").value = "";
  $("paste-result").textContent = "";
  $("step-prepare").hidden = false;
  $("digests").hidden = true;
  const progress = $("prepare-progress");
  progress.replaceChildren();
  state.busy = true;
  updateFlashButton();
  const view = progressView(progress, "");
  try {
    state.job = newJob();
    const prepared = await api.prepare(state.job, sourceSpec(), maxImageSize(), view);
    if (source !== state.source) return;
    state.prepared = prepared;
    const userData = trimmed("cfg-user-data");
    if (state.prepared.config) {
      state.configImage = state.prepared.config;
    } else if (userData) {
      const info = await api.appInfo();
      const hostname = trimmed("cfg-hostname");
      const cidata = await api.buildCidata({
        userData,
        hostname,
        instanceId: null,
        networkConfig: optional("cfg-network"),
        output: `${info.cacheDir}/cidata-${hostname}.img`,
      });
      state.configImage = { path: cidata.path, sha256: cidata.sha256, size: cidata.size };
    }
    if (source !== state.source) return;
    showDigests();
    view.end(`Checked · ${formatBytes(state.prepared.imageSize)}`, "good");
    $("flash-config-button").hidden = !(state.configImage && !input("cfg-one-stick").checked);
    await refreshDrives();
  } catch (e) {
    if (source !== state.source) return;
    state.prepared = null;
    const message = errorMessage(e);
    view.end(message === "cancelled" ? "Cancelled" : "Failed", "bad");
    say(message, "step-image");
  } finally {
    state.busy = false;
    updateFlashButton();
  }
});

function showDigests() {
  const p = state.prepared!;
  $("image-sha").textContent = p.imageSHA256;
  $("archive-sha").textContent = p.archiveSHA256;
  const source = describeSource(p.digestSource);
  $("digest-source").textContent = source.text;
  $("digest-source").className = source.warn ? "warning" : "";
  const config = state.configImage;
  $("config-sha-label").hidden = $("config-sha-row").hidden = !config;
  $("config-sha").textContent = config?.sha256 ?? "";
  $("digests").hidden = false;
}

for (const button of document.querySelectorAll<HTMLButtonElement>("[data-copy]")) {
  button.addEventListener("click", () => {
    void navigator.clipboard?.writeText($(button.dataset.copy!).textContent ?? "");
  });
}

input("paste-digest").addEventListener("input", () => {
  const pasted = input("paste-digest").value;
  const shown = [$("image-sha").textContent ?? "", $("archive-sha").textContent ?? "", $("config-sha").textContent ?? ""];
  const checks = shown.map((s) => checkDigest(pasted, s));
  const result = $("paste-result");
  if (checks.includes("match")) {
    result.textContent = "Match";
    result.className = "good";
  } else if (checks[0] === "empty") {
    result.textContent = "";
  } else if (checks[0] === "invalid") {
    result.textContent = "Not a SHA-256 digest (64 hex digits)";
    result.className = "bad";
  } else {
    result.textContent = "Mismatch: this is not the digest shown";
    result.className = "bad";
  }
});
input("confirm-digests").addEventListener("change", updateFlashButton);

// 3. Drive
input("show-all").addEventListener("change", () => {
  $("show-all-warning").hidden = !input("show-all").checked;
  void refreshDrives();
});

async function refreshDrives() {
  try {
    const list = await api.listDrives(input("show-all").checked, state.prepared?.imageSize ?? null);
    state.drives = new Map(list.map((d) => [d.path, d]));
    const dropped: string[] = [];
    for (const path of [...state.selected]) {
      const now = state.drives.get(path);
      if (!now || now.unsuitable) {
        state.selected.delete(path);
        dropped.push(now ? `${path} was unticked: ${now.unsuitable}` : `${path} was unplugged`);
      }
    }
    renderDrives();
    if (dropped.length > 0) say(dropped.join("; ") + ".", "step-drive");
  } catch (e) {
    say(errorMessage(e), "step-drive");
  }
}

function renderDrives() {
  const ul = $("drives");
  if (state.drives.size === 0) {
    const li = document.createElement("li");
    li.textContent = "No removable drives. Plug in a USB stick or SD card.";
    ul.replaceChildren(li);
    updateFlashButton();
    return;
  }
  ul.replaceChildren(
    ...[...state.drives.values()].map((d) => {
      const li = document.createElement("li");
      const label = document.createElement("label");
      const check = document.createElement("input");
      check.type = "checkbox";
      check.value = d.path;
      check.checked = state.selected.has(d.path);
      check.disabled = d.unsuitable !== null;
      check.addEventListener("change", () => {
        if (check.checked) state.selected.add(d.path);
        else state.selected.delete(d.path);
        updateFlashButton();
      });
      label.append(check, ` ${describeDrive(d)}`);
      if (d.fixed) label.append(" (fixed disk)");
      if (d.unsuitable) {
        li.className = "unsuitable";
        label.append(` — unsuitable: ${d.unsuitable}`);
      }
      li.append(label);
      return li;
    }),
  );
  updateFlashButton();
}

function updateFlashButton() {
  const now = {
    prepared: state.prepared !== null,
    confirmed: input("confirm-digests").checked,
    streams: streams(),
    mustCheck: mustCheck(),
    selected: state.selected.size,
    busy: state.busy,
  };
  $<HTMLButtonElement>("flash-button").disabled = !canFlash(now);
  $("flash-reason").textContent = flashBlocker(now) ?? "";
}

// 4. Flash
/** The confirmation before writing, in the page (a native dialog would block the window). */
function ask(text: string): Promise<boolean> {
  const dialog = $<HTMLDialogElement>("confirm-dialog");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    const answer = (yes: boolean) => {
      dialog.close();
      $("confirm-yes").onclick = $("confirm-no").onclick = null;
      resolve(yes);
    };
    $("confirm-yes").onclick = () => answer(true);
    $("confirm-no").onclick = () => answer(false);
    dialog.showModal();
    $("confirm-no").focus();
  });
}

$("flash-button").addEventListener("click", () => {
  if (state.prepared === null) {
    void flashStream();
    return;
  }
  const p = state.prepared;
  const oneStick = state.configImage !== null && input("cfg-one-stick").checked;
  void flashDrives(
    { path: p.imagePath, sha256: p.imageSHA256, size: p.imageSize },
    oneStick ? state.configImage!.path : null,
  );
});
$("flash-config-button").addEventListener("click", () => {
  const c = state.configImage!;
  void flashDrives({ path: c.path, sha256: c.sha256, size: c.size }, null);
});

/** The ticked drives, errors cleared; `null` (and said) when none is ticked. */
function chosenDrives(): Drive[] | null {
  clearErrors();
  const drives = [...state.selected].map((p) => state.drives.get(p)!);
  if (drives.length === 0) {
    say("Choose a drive first.", "step-drive");
    return null;
  }
  return drives;
}

// After a flash: the same image onto other drives (ticks cleared, the image kept), or a new start.
$("flash-another").addEventListener("click", () => {
  state.selected.clear();
  renderDrives();
  for (const id of ["flash-progress", "results"]) $(id).replaceChildren();
  $("stream-result").textContent = "";
  $("flash-another").hidden = true;
  clearErrors();
  updateFlashButton();
  $("drives").querySelector<HTMLInputElement>("input:not(:disabled)")?.focus();
});
$("start-over").addEventListener("click", () => {
  state.selected.clear();
  for (const id of ["file-path", "url", "typed-digest", "incus-seed", "build-config", "cfg-user-data"]) {
    input(id).value = "";
  }
  sourceChanged();
  renderDrives();
  $("after-flash").hidden = true;
  input("file-path").focus();
});

/** Busy, Cancel shown, the last flash's rows and results cleared; returns the progress area. */
function startFlashing(): HTMLElement {
  $("after-flash").hidden = true;
  state.busy = true;
  updateFlashButton();
  $("cancel-button").hidden = false;
  $("results").replaceChildren();
  $("stream-result").textContent = "";
  const area = $("flash-progress");
  area.replaceChildren();
  return area;
}

async function flashDrives(image: { path: string; sha256: string; size: number }, config: string | null) {
  const drives = chosenDrives();
  if (drives === null || !(await ask(confirmationText([imageLine(image)], drives)))) return;
  const area = startFlashing();
  const views = new Map(drives.map((d) => [d.path, progressView(area, d.path)]));
  try {
    state.job = newJob();
    const reports = await api.flash(
      state.job,
      {
        imagePath: image.path,
        imageSHA256: image.sha256,
        imageSize: image.size,
        targets: drives.map((d) => ({ path: d.path, identity: d.identity })),
        unmount: true,
        allowFixed: drives.some((d) => d.fixed),
        verify: input("read-back").checked,
        config,
      },
      (p) => p.target && views.get(p.target)?.(p),
    );
    showResults(reports, views);
  } catch (e) {
    const message = errorMessage(e);
    for (const view of views.values()) view.end(message === "cancelled" ? "Cancelled" : "Failed", "bad");
    say(message, "step-flash");
  } finally {
    state.busy = false;
    $("cancel-button").hidden = true;
    updateFlashButton();
  }
}
/** Ends each drive's progress row as what happened and lists each drive's result; offers the
 * next step. */
function showResults(reports: TargetReport[], views: Map<string, ProgressView>) {
  $("after-flash").hidden = false;
  $("flash-another").hidden = false;
  for (const r of reports) {
    const view = views.get(r.path);
    if (!r.ok) view?.end(r.error === "cancelled" ? "Cancelled" : "Failed", "bad");
    else if (r.verifiedSHA256) view?.end(`✓ Verified — read back matches ${shortDigest(r.verifiedSHA256)}`, "good");
    else view?.end("Written, not read back", "good");
  }
  $("results").replaceChildren(
    ...reports.map((r) => {
      const li = document.createElement("li");
      li.className = r.ok ? "good" : "bad";
      li.dataset.path = r.path;
      if (r.ok) {
        li.textContent = r.verifiedSHA256
          ? `${r.path}: done, read back SHA-256 ${r.verifiedSHA256}`
          : `${r.path}: written, NOT read back (unverified)`;
      } else {
        const first = (r.error ?? "failed").split(": ").slice(-1)[0];
        li.textContent = `${r.path}: failed — ${first}`;
        const more = document.createElement("details");
        const summary = document.createElement("summary");
        summary.textContent = "Details";
        more.append(summary, r.error ?? "");
        li.append(more);
      }
      return li;
    }),
  );
}

/** Flashes straight from the source, as the command line does: the engine settles the digest
 * that vouches for the archive and checks every drive (the plan), the confirmation shows that
 * plan, and the run decodes, writes and reads back in one pass. */
async function flashStream() {
  const drives = chosenDrives();
  if (drives === null) return;
  const source = state.source;
  const area = startFlashing();
  const plan = newJob();
  state.job = plan;
  try {
    const planned = await api.planFlash(
      plan,
      {
        source: sourceSpec(),
        maxImageSize: maxImageSize(),
        targets: drives.map((d) => ({ path: d.path, identity: d.identity })),
        unmount: true,
        allowFixed: drives.some((d) => d.fixed),
        verify: input("read-back").checked,
      },
      progressView(area, ""),
    );
    area.replaceChildren();
    const what = [...planned.warnings.map((w) => `Warning: ${w}`), ...planned.lines.map(sentence)];
    if (source !== state.source || !(await ask(confirmationText(what, drives)))) {
      void api.dropPlan(plan);
      return;
    }
    const views = new Map(drives.map((d) => [d.path, progressView(area, d.path)]));
    state.job = newJob();
    try {
      const flashed = await api.runFlash(state.job, plan, (p) => p.target && views.get(p.target)?.(p));
      showResults(flashed.targets, views);
      const from = describeSource(flashed.digestSource);
      $("stream-result").textContent =
        `Image SHA-256 ${flashed.imageSHA256} (${formatBytes(flashed.imageSize)}), from the ` +
        `download or file with SHA-256 ${flashed.archiveSHA256}` +
        (from.warn ? ", which nothing the publisher published vouches for." : `, as ${from.text} vouches.`);
    } catch (e) {
      const message = errorMessage(e);
      for (const view of views.values()) view.end(message === "cancelled" ? "Cancelled" : "Failed", "bad");
      say(message, "step-flash");
    }
  } catch (e) {
    area.replaceChildren();
    say(errorMessage(e), "step-flash");
  } finally {
    state.busy = false;
    $("cancel-button").hidden = true;
    updateFlashButton();
  }
}

$("cancel-button").addEventListener("click", () => void api.cancel(state.job));

// Verify mode
$("verify-button").addEventListener("click", async () => {
  clearErrors();
  const kind = document.querySelector<HTMLInputElement>('input[name="expected"]:checked')!.value;
  const value = trimmed("verify-expected");
  const expected =
    kind === "image"
      ? ({ kind: "image", path: value } as const)
      : kind === "sidecar"
        ? ({ kind: "sidecar", location: value } as const)
        : ({ kind: "digest", sha256: value } as const);
  const sizeText = trimmed("verify-size");
  const size = sizeText ? Number(sizeText) : null;
  const verdict = $("verify-result");
  verdict.textContent = "";
  $("verify-detail").textContent = "";
  const area = $("verify-progress");
  area.replaceChildren();
  try {
    if (size !== null && !Number.isSafeInteger(size)) throw new Error("The size must be a number of bytes.");
    const view = progressView(area, "");
    const v = await api.verify(newJob(), trimmed("verify-path"), expected, size, view);
    view.end(`Read back ${formatBytes(v.size)}`, v.match ? "good" : "bad");
    verdict.textContent = v.match ? "MATCH" : "MISMATCH";
    verdict.className = `verdict ${v.match ? "good" : "bad"}`;
    $("verify-detail").textContent = `${v.path}, ${v.size} bytes: SHA-256 ${v.sha256}; expected ${v.expectedSHA256}, from ${v.expectedFrom}`;
  } catch (e) {
    say(errorMessage(e), "verify");
  }
});

// Settings
async function showSettings() {
  try {
    const [info, cache] = await Promise.all([api.appInfo(), api.cacheInfo()]);
    $("cache-path").textContent = cache.path;
    $("cache-size").textContent = formatBytes(cache.bytes);
    $("version").textContent = `labflash ${info.version}`;
    $("ca-cert").textContent = info.caCert ?? "none: servers are trusted as this computer trusts them";
    $("clear-ca-cert").hidden = info.caCert === null;
  } catch (e) {
    say(errorMessage(e), "settings");
  }
}
// A lab's own CA, trusted beside the system's certificates for every download.
async function setCaCert(path: string | null) {
  $("ca-cert-error").textContent = "";
  try {
    await api.setCaCert(path);
  } catch (e) {
    $("ca-cert-error").textContent = errorMessage(e);
  }
  await showSettings();
}
$("choose-ca-cert").addEventListener("click", async () => {
  const chosen = await open({ multiple: false, directory: false }).catch(() => null);
  if (typeof chosen === "string") await setCaCert(chosen);
});
$("clear-ca-cert").addEventListener("click", () => void setCaCert(null));
$("clear-cache").addEventListener("click", async () => {
  await api.clearCache().catch((e) => say(errorMessage(e), "settings"));
  await showSettings();
});

// Flash says from the start why it cannot be pressed yet.
updateFlashButton();
// Drives come and go while the window is open.
void refreshDrives();
void api.watchDrives(newJob(), () => void refreshDrives()).catch((e) => say(errorMessage(e)));
