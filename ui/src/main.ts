// The window: four steps (image, check, drive, flash), a verify mode and settings. Every action is
// a command of the app; this file only presents.
import { open } from "@tauri-apps/plugin-dialog";
import { getCurrentWebview } from "@tauri-apps/api/webview";
import { api, errorMessage, newJob, type Drive, type Prepared, type Progress, type SourceSpec } from "./api";
import {
  Meter,
  canFlash,
  checkDigest,
  confirmationText,
  describeDrive,
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
};

function say(text: string) {
  $("message").textContent = text;
}

// Tabs
for (const tab of ["flash", "verify", "settings"]) {
  $(`tab-${tab}`).addEventListener("click", () => {
    for (const other of ["flash", "verify", "settings"]) {
      $(`tab-${other}`).setAttribute("aria-selected", String(other === tab));
      $(other).hidden = other !== tab;
    }
    if (tab === "settings") void showSettings();
  });
}

// 1. Image: paths typed, chosen in the file chooser, or dropped on the window.
for (const button of document.querySelectorAll<HTMLButtonElement>("[data-choose]")) {
  button.addEventListener("click", async () => {
    const chosen = await open({ multiple: false, directory: false }).catch((e) => {
      say(errorMessage(e));
      return null;
    });
    if (typeof chosen === "string") input(button.dataset.choose!).value = chosen;
  });
}
void getCurrentWebview()
  .onDragDropEvent((e) => {
    if (e.payload.type === "drop" && e.payload.paths.length > 0) {
      document.querySelector<HTMLInputElement>('input[name="kind"][value="file"]')!.click();
      input("file-path").value = e.payload.paths[0];
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

$("load-versions").addEventListener("click", async () => {
  try {
    const versions = await api.talosVersions(trimmed("factory-url"));
    const select = $<HTMLSelectElement>("talos-version");
    select.replaceChildren(
      ...versions.map((v) => new Option(v.prerelease ? `${v.version} (pre-release)` : v.version, v.version)),
    );
    await loadExtensions();
  } catch (e) {
    say(errorMessage(e));
  }
});
$("talos-version").addEventListener("change", () => void loadExtensions());

async function loadExtensions() {
  const version = $<HTMLSelectElement>("talos-version").value;
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

function sourceSpec(): SourceSpec {
  const sha256 = optional("typed-digest");
  switch (sourceKind()) {
    case "url":
      return { kind: "url", url: trimmed("url"), sha256, allowUnverified: input("allow-unverified").checked };
    case "talos":
      return {
        kind: "talos",
        factoryUrl: trimmed("factory-url"),
        version: $<HTMLSelectElement>("talos-version").value,
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

function progressView(container: HTMLElement, key: string): (p: Progress) => void {
  const meter = new Meter();
  const line = document.createElement("div");
  line.dataset.key = key;
  const label = document.createElement("span");
  const bar = document.createElement("progress");
  bar.max = 100;
  line.append(label, bar);
  container.append(line);
  return (p) => {
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
}

$("prepare").addEventListener("click", async () => {
  say("");
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
  try {
    state.job = newJob();
    const gib = Number(trimmed("max-image-gib") || "4");
    if (!(gib > 0)) throw new Error("the largest image size must be a number of GiB above 0");
    const maxImageSize = Math.round(gib * 2 ** 30);
    state.prepared = await api.prepare(state.job, sourceSpec(), maxImageSize, progressView(progress, ""));
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
    showDigests();
    $("flash-config-button").hidden = !(state.configImage && !input("cfg-one-stick").checked);
    await refreshDrives();
  } catch (e) {
    say(errorMessage(e));
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
    for (const path of [...state.selected]) {
      if (!state.drives.has(path) || state.drives.get(path)!.unsuitable) state.selected.delete(path);
    }
    renderDrives();
  } catch (e) {
    say(errorMessage(e));
  }
}

function renderDrives() {
  const ul = $("drives");
  if (state.drives.size === 0) {
    const li = document.createElement("li");
    li.textContent = "No removable drives. Plug in a USB stick or SD card.";
    ul.replaceChildren(li);
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
  $<HTMLButtonElement>("flash-button").disabled = !canFlash({
    prepared: state.prepared !== null,
    confirmed: input("confirm-digests").checked,
    selected: state.selected.size,
    busy: state.busy,
  });
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
  const p = state.prepared!;
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

async function flashDrives(image: { path: string; sha256: string; size: number }, config: string | null) {
  const drives = [...state.selected].map((p) => state.drives.get(p)!);
  if (drives.length === 0) {
    say("Choose a drive first.");
    return;
  }
  if (!(await ask(confirmationText(drives)))) return;
  say("");
  state.busy = true;
  updateFlashButton();
  $("cancel-button").hidden = false;
  const area = $("flash-progress");
  area.replaceChildren();
  $("results").replaceChildren();
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
  } catch (e) {
    say(errorMessage(e));
  } finally {
    state.busy = false;
    $("cancel-button").hidden = true;
    updateFlashButton();
  }
}
$("cancel-button").addEventListener("click", () => void api.cancel(state.job));

// Verify mode
$("verify-button").addEventListener("click", async () => {
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
    if (size !== null && !Number.isSafeInteger(size)) throw new Error("the size must be a number of bytes");
    const v = await api.verify(newJob(), trimmed("verify-path"), expected, size, progressView(area, ""));
    verdict.textContent = v.match ? "MATCH" : "MISMATCH";
    verdict.className = `verdict ${v.match ? "good" : "bad"}`;
    $("verify-detail").textContent = `${v.path}, ${v.size} bytes: SHA-256 ${v.sha256}; expected ${v.expectedSHA256}, from ${v.expectedFrom}`;
  } catch (e) {
    say(errorMessage(e));
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
    say(errorMessage(e));
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
  await api.clearCache().catch((e) => say(errorMessage(e)));
  await showSettings();
});

// Drives come and go while the window is open.
void refreshDrives();
void api.watchDrives(newJob(), () => void refreshDrives()).catch((e) => say(errorMessage(e)));
