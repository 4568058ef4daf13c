// Everything the window does: each action calls the app's commands and writes the store. The
// engine decides; these only ask it and say what it answered.
import { open } from "@tauri-apps/plugin-dialog";
import { getCurrentWebview } from "@tauri-apps/api/webview";
import { api, errorKind, errorMessage, newJob, wasCancelled, type Drive, type DriveRow, type Flashed, type ImageSpec, type PlanView, type ProbeView, type Progress, type TargetReport } from "./api";
import {
  Meter,
  checkDigest,
  ejectText,
  flashBlocker,
  formatBytes,
  progressLine,
  resultLine,
  sentence,
  shortDigest,
  waitingText,
} from "./logic";
import { maxImageSize, mustCheck, sourceField, sourceGiven, sourceSpec, sourceTitle } from "./source";
import { createStore, emptyForm, initialState, noImage, type Form, type Kind, type Line, type Place, type State, type Tab } from "./store";

const SETTINGS = { checkFirst: "labflash.checkFirst", readBack: "labflash.readBack", eject: "labflash.eject" };
const stored = (key: string, fallback: boolean) => {
  const v = localStorage.getItem(key);
  return v === null ? fallback : v === "1";
};

export const store = createStore<State>(
  initialState(stored(SETTINGS.checkFirst, false), stored(SETTINGS.readBack, true), stored(SETTINGS.eject, true)),
);
const get = store.get;
const set = store.set;

// Errors: one sentence in the tile or tab whose action failed, cleared by the next action.
export function say(place: Place, text: string, field: string | null = null) {
  set((s) => ({ errors: { ...s.errors, [place]: sentence(text) }, invalid: field ?? s.invalid }));
}
/** Clears the shown errors (the window's own, such as a failed drive watch, stay). */
function clearErrors() {
  set((s) => ({ errors: s.errors.window ? { window: s.errors.window } : {}, invalid: null }));
}

/** Why Flash cannot be pressed now, in one line; `null` when it can. */
export function flashReason(s: State): string | null {
  if (s.form.kind === "lab") return labReason(s);
  const check = mustCheck(s.form, s.settings.checkFirst, s.streams);
  const p = s.prepared;
  const shown = [p?.imageSHA256, p?.archiveSHA256, s.config?.sha256].filter((d): d is string => !!d);
  const pasted = shown.map((d) => checkDigest(s.pasted, d));
  return flashBlocker({
    prepared: p !== null,
    confirmed: s.confirmed,
    mustCompare: p?.digestSource === "unverified",
    pastedMismatch: !pasted.includes("match") && pasted.some((c) => c === "mismatch" || c === "invalid"),
    checkFailed: !!s.errors.image,
    streams: !check && sourceGiven(s.form) && s.streams === true,
    mustCheck: check,
    selected: s.selected.length,
    busy: s.job !== null || s.check !== null,
    twoSticks: usesTwoSticks(s) ? { configDrive: s.configDrive !== null && s.selected.includes(s.configDrive) } : undefined,
  });
}

export function selectTab(tab: Tab) {
  set({ tab });
  clearErrors();
  if (tab === "settings") void loadSettings();
}

// The source -----------------------------------------------------------------------------------

/** Opens the source dialog on a copy of the form. */
export function editSource(kind: Kind) {
  // The image's error moves into the dialog, beside the field it is about.
  set((s) => ({ draft: { ...s.form, kind }, errors: { source: s.errors.image } }));
  if (kind === "talos" && get().versions.length === 0) void loadVersions();
}
export function editDraft(patch: Partial<Form>) {
  set((s) => ({ draft: s.draft && { ...s.draft, ...patch } }));
}
export function closeSource() {
  const probing = get().probing;
  if (probing !== null) void api.cancel(probing);
  set({ draft: null, loadingVersions: false, probing: null });
}

/** The sources a dialog names on the network: asked for before the dialog closes. */
const ASKED_IN_DIALOG: Kind[] = ["url", "talos", "incus"];

/** The dialog's answer: the drafted source becomes the chosen one. A URL, a Talos or an IncusOS
 * image is asked for first, the dialog open, so what cannot be had (a 404, a server offline, no
 * published checksum) is said beside the fields it is about. */
export async function useSource() {
  const draft = get().draft;
  if (!draft || get().probing !== null) return;
  if (!ASKED_IN_DIALOG.includes(draft.kind)) {
    set({ draft: null, loadingVersions: false });
    return void chooseSource(draft);
  }
  const job = newJob();
  // The image is asked for now: a versions list still loading would only overwrite its answer.
  set((s) => ({ probing: job, loadingVersions: false, errors: s.errors.window ? { window: s.errors.window } : {}, invalid: null }));
  try {
    const found = await api.probeSource(job, sourceSpec(draft), maxImageSize(get().settings.maxGiB), () => {});
    if (get().probing !== job) return; // the dialog was closed meanwhile
    set({ probing: null, draft: null, loadingVersions: false });
    void chooseSource(draft, found);
  } catch (e) {
    if (get().probing !== job) return;
    set({ probing: null });
    if (!wasCancelled(e)) say("source", errorMessage(e), sourceField(draft.kind));
  }
}

/** The native file chooser; the chosen file becomes the source. */
export async function chooseImageFile() {
  clearErrors();
  const chosen = await open({ multiple: false, directory: false }).catch((e) => {
    say("image", errorMessage(e));
    return null;
  });
  if (typeof chosen === "string") void chooseSource({ ...get().form, kind: "file", filePath: chosen });
}

/** A path chosen in the native file chooser for one of the draft's fields. */
export async function chooseFor(field: "filePath" | "buildConfig" | "cfgUserData" | "cfgNetwork" | "incusSeed" | "labFile") {
  const chosen = await open({ multiple: false, directory: field === "incusSeed" }).catch(() => null);
  if (typeof chosen === "string") editDraft({ [field]: chosen });
}

/** A new source: everything known about the old one goes (Flash is never armed with an image
 * the window no longer shows); the engine looks at it (`found`: what the dialog already learnt):
 * where it is, its size (drives too small for it are marked at once), what vouches for it, and
 * whether it streams; checking starts by itself when the image must be checked. */
export async function chooseSource(form: Form, found: ProbeView | null = null) {
  const s = get();
  if (s.check !== null && s.job !== null) void api.cancel(s.job);
  if (s.confirm) answerConfirm(false);
  const gen = s.gen + 1;
  set({
    form,
    gen,
    ...noImage,
    run: null,
    job: null,
    errors: {},
    invalid: null,
  });
  void refreshDrives();
  if (!sourceGiven(form)) return;
  if (form.kind === "lab") return loadLab(form, gen);
  // A labctl build is a file made from its config: checking it first is what learns about it.
  if (!found && form.kind === "talosBuild") {
    set({ streams: false });
    return void check();
  }
  if (!found) {
    const job = newJob();
    set({ check: { text: "Looking at the image…", percent: null }, job });
    try {
      found = await api.probeSource(job, sourceSpec(form), maxImageSize(get().settings.maxGiB), () => {});
    } catch (e) {
      if (get().gen !== gen) return;
      set({ check: null, job: null });
      if (!wasCancelled(e)) say("image", errorMessage(e), sourceField(form.kind));
      return;
    }
    if (get().gen !== gen) return;
    set({ check: null, job: null });
  }
  set({ found, streams: found.streams });
  void refreshDrives();
  if (mustCheck(form, get().settings.checkFirst, found.streams)) void check();
}

let versionsAsked = 0;
export async function loadVersions() {
  const f = get().draft ?? get().form;
  const [factory, token] = [f.factoryUrl.trim(), f.factoryToken.trim() || null];
  const mine = ++versionsAsked;
  // An answer counts only for the latest request, not cancelled: `current()`.
  const current = () => mine === versionsAsked && get().loadingVersions;
  set({ loadingVersions: true, errors: {} });
  try {
    const versions = await api.talosVersions(factory, token);
    if (!current()) return;
    set({ versions, loadingVersions: false });
    const newest = versions.find((v) => !v.prerelease);
    if (get().draft && !get().draft!.talosVersion && newest) editDraft({ talosVersion: newest.version });
    await loadExtensions();
  } catch (e) {
    if (!current()) return;
    set({ loadingVersions: false });
    say("source", `${errorMessage(e)} You can still type a version.`, "talos-version");
  }
}
export function cancelVersions() {
  set({ loadingVersions: false });
}

/** The version's extensions and board overlays, for the dialog to offer. */
export async function loadExtensions() {
  const d = get().draft;
  if (!d || !d.talosVersion.trim()) return;
  const [factory, token, version] = [d.factoryUrl.trim(), d.factoryToken.trim() || null, d.talosVersion.trim()];
  try {
    const [extensions, overlays] = await Promise.all([
      api.talosExtensions(factory, token, version),
      api.talosOverlays(factory, token, version),
    ]);
    set({ extensions, overlays });
  } catch (e) {
    say("source", errorMessage(e));
  }
}

/** Progress reports into a line of the store, each line with its own meter. */
function lineSink(write: (line: Line) => void): (p: Progress) => void {
  const meter = new Meter();
  return (p) => write(progressLine(meter, p, performance.now()));
}

/** Check first: download, prove and decompress the image (and build its config image), then
 * show its digests for the operator to compare. */
export async function check() {
  const gen = get().gen;
  const form = get().form;
  const job = newJob();
  set({ check: { text: "Starting…", percent: null }, job, prepared: null, config: null, confirmed: false });
  const current = () => get().gen === gen;
  try {
    const prepared = await api.prepare(job, sourceSpec(form), maxImageSize(get().settings.maxGiB), lineSink((check) => current() && set({ check })));
    let config = prepared.config;
    if (!config && form.kind === "talos" && form.cfgUserData.trim()) {
      const hostname = form.cfgHostname.trim();
      config = await api.buildCidata({
        userData: form.cfgUserData.trim(),
        hostname,
        instanceId: null,
        networkConfig: form.cfgNetwork.trim() || null,
        output: `${get().settings.cachePath || (await api.appInfo()).cacheDir}/cidata-${hostname}.img`,
      });
    }
    if (!current()) return;
    // A release that cannot read cidata on its own boot stick starts (and stays) on two.
    set({ prepared, preparedJob: job, config, twoSticks: prepared.configOwnStick !== null, check: null, job: null });
    await refreshDrives();
  } catch (e) {
    if (!current()) return;
    set({ check: null, job: null });
    if (!wasCancelled(e)) say("image", errorMessage(e), sourceField(form.kind));
  }
}

export function cancelJob() {
  const job = get().job;
  if (job !== null) void api.cancel(job);
}

/** A pasted digest that is none of those shown takes back "I compared these digests". */
export function setPasted(pasted: string) {
  const p = get().prepared;
  const shown = [p?.imageSHA256, p?.archiveSHA256, get().config?.sha256].filter((d): d is string => !!d);
  const checks = shown.map((d) => checkDigest(pasted, d));
  const wrong = !checks.includes("match") && checks.some((c) => c === "mismatch" || c === "invalid");
  set((s) => ({ pasted, confirmed: wrong ? false : s.confirmed }));
}
export function setConfirmed(confirmed: boolean) {
  set({ confirmed });
}

// A lab -----------------------------------------------------------------------------------------

/** Loads a lab file: the engine builds every node's config image (each checked) and holds the
 * lab under a job; each node then takes a drive. */
async function loadLab(form: Form, gen: number) {
  const job = newJob();
  try {
    const lab = await api.loadLab(job, form.labFile.trim());
    if (get().gen !== gen) return;
    set({ lab, labJob: job, labDrives: lab.nodes.map(() => null), labConfigDrives: lab.nodes.map(() => null) });
  } catch (e) {
    if (get().gen === gen) say("image", errorMessage(e), "lab-file");
  }
}

/** Why a lab cannot be flashed yet; `null` when every node has a drive of its own. */
function labReason(s: State): string | null {
  if (s.job !== null) return "Busy: wait for the current step to finish, or cancel it.";
  if (!s.lab) return "Choose a lab file.";
  const missing = s.lab.nodes.filter((_, i) => !s.labDrives[i]).map((n) => n.hostname);
  if (missing.length > 0) return `Choose a drive for ${missing.join(", ")}.`;
  const two = s.lab.configOwnStick !== null;
  const noConfig = s.lab.nodes.filter((_, i) => two && !s.labConfigDrives[i]).map((n) => n.hostname);
  if (noConfig.length > 0) return `Choose a config stick for ${noConfig.join(", ")}.`;
  const paths = [...s.labDrives, ...(two ? s.labConfigDrives : [])].filter((d): d is string => d !== null);
  if (new Set(paths).size !== paths.length) return "Each node needs a drive of its own.";
  return null;
}

/** A node's drive (or, with two sticks, its config stick), chosen in its row (`null`: none). */
export function setLabDrive(node: number, path: string | null, config = false) {
  const pick = (drives: (string | null)[]) => drives.map((d, i) => (i === node ? path : d));
  set((s) => ({
    ...(config ? { labConfigDrives: pick(s.labConfigDrives) } : { labDrives: pick(s.labDrives) }),
    errors: { ...s.errors, drive: undefined, flash: undefined },
  }));
}

/** Removable drives plugged in while a lab waits go to its nodes without one, in the order
 * plugged (a fixed disk, or one that "Show all drives" brought into the list, is never chosen
 * for the operator); a chosen drive that is gone leaves its row, said so. */
function assignPlugged(before: string[], drives: DriveRow[], showAllChanged: boolean) {
  const s = get();
  if (!s.lab) return;
  const listed = (p: string | null) => p === null || drives.some((d) => d.path === p && !d.unsuitable);
  const gone = [...s.labDrives, ...s.labConfigDrives].filter((p) => !listed(p));
  if (gone.length > 0) {
    // After a run its drives go as they are ejected: that is no news.
    const quiet = s.run !== null;
    set((t) => ({
      labDrives: t.labDrives.map((p) => (listed(p) ? p : null)),
      labConfigDrives: t.labConfigDrives.map((p) => (listed(p) ? p : null)),
    }));
    if (!quiet) say("drive", `${gone.join(", ")} left the lab's table: unplugged, or it cannot take the image now`);
  }
  if (before.length === 0 || showAllChanged) return;
  const now = get();
  const chosen = [...now.labDrives, ...now.labConfigDrives];
  const plugged = drives.filter((d) => !d.unsuitable && !d.fixed && !before.includes(d.path) && !chosen.includes(d.path));
  if (plugged.length === 0) return;
  // Row by row: a node's boot stick, then (two sticks) its config stick.
  const labDrives = [...now.labDrives];
  const labConfigDrives = [...now.labConfigDrives];
  const two = s.lab.configOwnStick !== null;
  for (const d of plugged) {
    const i = labDrives.findIndex((p, n) => p === null || (two && labConfigDrives[n] === null));
    if (i < 0) break;
    if (labDrives[i] === null) labDrives[i] = d.path;
    else labConfigDrives[i] = d.path;
  }
  set({ labDrives, labConfigDrives });
}

/** Flashes the lab through the engine's plan: the image prepared once, every node's drive
 * approved, one confirmation for all, then every drive written at the same time. */
async function flashLab() {
  const s = get();
  const lab = s.lab!;
  const gen = s.gen;
  const drives = s.labDrives.map((p) => s.drives.find((d) => d.path === p)!);
  const two = lab.configOwnStick !== null;
  const configDrives = two ? s.labConfigDrives.map((p) => s.drives.find((d) => d.path === p)!) : [];
  clearErrors();
  set({
    run: {
      phase: "planning",
      image: `${lab.nodes.length} nodes from ${lab.source.split("/").pop()}`,
      plan: { text: "Checking the image and the drives…", percent: null },
      drives: [
        ...drives.map((drive, i) => ({ drive, config: false, node: lab.nodes[i].hostname, line: { text: "Not written yet", percent: null } })),
        ...configDrives.map((drive, i) => ({ drive, config: true, node: lab.nodes[i].hostname, line: { text: "Not written yet", percent: null } })),
      ],
      result: null,
      askCancel: false,
    },
  });
  const plan = newJob();
  set({ job: plan });
  let planned;
  try {
    planned = await api.planLab(
      plan,
      {
        lab: s.labJob!,
        drives: targetsOf(drives),
        configDrives: two ? targetsOf(configDrives) : null,
        unmount: true,
        allowFixed: [...drives, ...configDrives].some((d) => s.drives.find((x) => x.path === d.path)?.fixed),
        verify: s.settings.readBack,
      },
      lineSink((line) => updateRun(() => ({ plan: line }))),
    );
  } catch (e) {
    set({ run: null, job: null });
    if (!wasCancelled(e)) say("flash", errorMessage(e));
    return;
  }
  updateRun(() => ({ plan: null }));
  if (gen !== get().gen || !(await ask(planned, [...drives, ...configDrives], lab.nodes.length)) || gen !== get().gen) {
    void api.dropPlan(plan);
    set({ run: null, job: null });
    return;
  }
  updateRun(() => ({ phase: "writing" }));
  const job = newJob();
  set({ job });
  try {
    const run = await api.runLab(job, plan, driveSinks([...drives, ...configDrives]));
    const nodes = run.nodes;
    updateRun(() => ({ record: { path: run.record, error: run.recordError } }));
    const failed = nodes.filter((n) => n.error).map((n) => `${n.node}: ${n.error}`);
    // A node that failed as a whole has no report for its drives: its rows say so.
    const whole = new Set(nodes.filter((n) => n.error).map((n) => n.node));
    updateRun((r) => ({
      drives: r.drives.map((d) => (d.node && whole.has(d.node) ? { ...d, line: { text: "Failed", percent: null, outcome: "bad" } } : d)),
    }));
    await finishReports(nodes.flatMap((n) => (n.flashed ? [...n.flashed.targets, ...(n.flashed.configStick?.targets ?? [])] : [])), null);
    if (failed.length > 0) say("flash", failed.join("; "));
  } catch (e) {
    endAll(e);
  }
}

// Drives ---------------------------------------------------------------------------------------

let listed = 0;
/** Whether the last list was asked with "Show all drives": a list that changes with it is not a
 * stick being plugged in. */
let listedShowAll = false;
export async function refreshDrives() {
  const s = get();
  const mine = ++listed;
  const source = s.form.kind === "file" ? s.form.filePath.trim() || null : null;
  try {
    const size = s.prepared?.imageSize ?? s.found?.imageSize?.bytes ?? null;
    const drives = await api.listDrives(s.showAll, size, source);
    if (mine !== listed) return; // a newer list was asked for
    assignPlugged(
      get().drives.map((d) => d.path),
      drives,
      s.showAll !== get().showAll || listedShowAll !== s.showAll,
    );
    listedShowAll = s.showAll;
    const dropped: string[] = [];
    const selected = get().selected.filter((path) => {
      const now = drives.find((d) => d.path === path);
      if (now && !now.unsuitable) return true;
      dropped.push(now ? `${path} was unticked: ${now.unsuitable!.reason}` : `${path} was unplugged`);
      return false;
    });
    set({ drives, selected });
    if (dropped.length > 0) say("drive", dropped.join("; "));
  } catch (e) {
    say("drive", errorMessage(e));
  }
}

export function toggleDrive(path: string, on: boolean) {
  // Ticking a drive answers the drive's and Flash's errors, not the image's.
  set((s) => ({ errors: { ...s.errors, drive: undefined, flash: undefined } }));
  set((s) => ({
    selected: on ? [...s.selected.filter((p) => p !== path), path] : s.selected.filter((p) => p !== path),
    configDrive: !on && s.configDrive === path ? null : s.configDrive,
  }));
}

/** Whether this flash writes the config onto a stick of its own. */
export function usesTwoSticks(s: State): boolean {
  return s.prepared !== null && s.config !== null && s.twoSticks;
}
/** One stick for both, or two; the engine refuses one where the release would not read it. */
export function setTwoSticks(twoSticks: boolean) {
  set((s) => ({ twoSticks, configDrive: twoSticks ? s.configDrive : null, errors: { ...s.errors, flash: undefined } }));
}
/** Which ticked drive gets the config image (two sticks). */
export function setConfigDrive(path: string) {
  set((s) => ({ configDrive: path, errors: { ...s.errors, drive: undefined, flash: undefined } }));
}

export function setShowAll(showAll: boolean) {
  set({ showAll });
  void refreshDrives();
}

// Flash ----------------------------------------------------------------------------------------

let answer: ((yes: boolean) => void) | null = null;
/** The confirmation before erasing; resolves with the operator's answer. */
function ask(planned: PlanView, drives: Drive[], lab: number | null = null): Promise<boolean> {
  const confirm = { summary: planned.summary, lines: planned.lines.map(sentence), warnings: planned.warnings.map((w) => `Warning: ${sentence(w)}`), drives, lab };
  set({ confirm });
  return new Promise((resolve) => (answer = resolve));
}
export function answerConfirm(yes: boolean) {
  set({ confirm: null });
  answer?.(yes);
  answer = null;
}

function chosenDrives(): Drive[] {
  const s = get();
  return s.selected.map((p) => s.drives.find((d) => d.path === p)!).filter(Boolean);
}

const targetsOf = (drives: Drive[]) => drives.map((d) => ({ path: d.path, identity: d.identity }));

/** The flashing page: one row per drive (the config stick's marked). */
function startRun(image: string, drives: Drive[], configDrive: string | null) {
  clearErrors();
  set({
    run: {
      phase: "planning",
      image,
      plan: { text: "Checking the image and the drives…", percent: null },
      drives: drives.map((drive) => ({ drive, config: drive.path === configDrive, line: { text: "Not written yet", percent: null } })),
      result: null,
      askCancel: false,
    },
  });
}
function updateRun(patch: (r: NonNullable<State["run"]>) => Partial<NonNullable<State["run"]>>) {
  set((s) => ({ run: s.run && { ...s.run, ...patch(s.run) } }));
}
function driveSinks(drives: Drive[]): (p: Progress) => void {
  const meters = new Map(drives.map((d) => [d.path, new Meter()]));
  return (p) => {
    // The download feeds every drive: while its server is silent, each row says so.
    if (!p.target && p.waiting) {
      const text = waitingText(p.waiting);
      return updateRun((r) => ({ drives: r.drives.map((d) => (d.report || d.line.outcome ? d : { ...d, line: { ...d.line, text } })) }));
    }
    const meter = p.target ? meters.get(p.target) : undefined;
    if (!meter) return;
    const line = progressLine(meter, p, performance.now());
    updateRun((r) => ({ drives: r.drives.map((d) => (d.drive.path === p.target && !d.report ? { ...d, line } : d)) }));
  };
}

/** Ends each drive's row as what happened, then ejects the drives that were written. */
function finish(flashed: Flashed) {
  return finishReports([...flashed.targets, ...(flashed.configStick?.targets ?? [])], flashed);
}

/** Ends each drive's row with its report (`flashed`: the flash's result, for its digests), then
 * ejects the drives that were written. */
async function finishReports(reports: TargetReport[], flashed: Flashed | null) {
  const ejecting = get().settings.eject && reports.some((r) => r.ok);
  updateRun((r) => ({
    phase: ejecting ? "ejecting" : "done",
    result: flashed,
    askCancel: false,
    drives: r.drives.map((d) => {
      const report = reports.find((x) => x.path === d.drive.path);
      return report ? { ...d, report, line: resultLine(report) } : d;
    }),
  }));
  set({ job: null });
  if (!ejecting) return;
  for (const report of reports.filter((r) => r.ok)) {
    let eject: { text: string; ok: boolean };
    try {
      eject = { text: ejectText(await api.eject(report.path)), ok: true };
    } catch (e) {
      eject = { text: `Not ejected: ${sentence(errorMessage(e))}`, ok: false };
    }
    updateRun((r) => ({ drives: r.drives.map((d) => (d.drive.path === report.path ? { ...d, eject } : d)) }));
  }
  updateRun(() => ({ phase: "done" }));
  void refreshDrives();
}

/** Every drive's row ends as cancelled, or failed with the flash as a whole (`e`). */
function endAll(e: unknown) {
  const cancelled = wasCancelled(e);
  updateRun((r) => ({
    phase: "done",
    askCancel: false,
    failure: cancelled ? "cancelled" : errorKind(e),
    drives: r.drives.map((d) => ({ ...d, line: { text: cancelled ? "Cancelled" : "Failed", percent: null, outcome: "bad" } })),
  }));
  set({ job: null });
  if (!cancelled) say("flash", errorMessage(e));
}

/** Flashes through the engine's one path: it plans (settles the digest that vouches for the
 * image, or takes the image a check proved, and approves every drive, the config stick's too),
 * the confirmation shows that plan, then the run writes and reads back. */
export async function flash() {
  if (flashReason(get()) !== null) return;
  if (get().form.kind === "lab") return flashLab();
  const s = get();
  const gen = s.gen;
  const two = usesTwoSticks(s);
  const configDrive = two ? s.configDrive : null;
  const drives = chosenDrives();
  const bootDrives = drives.filter((d) => d.path !== configDrive);
  const config = s.prepared && s.config ? { path: s.config.path, sha256: s.config.sha256 } : null;
  const image: ImageSpec = s.prepared
    ? { kind: "prepared", job: s.preparedJob! }
    : { kind: "source", source: sourceSpec(s.form), maxImageSize: maxImageSize(s.settings.maxGiB) };
  const name = s.prepared ? `${s.prepared.imagePath.split("/").pop()} (${formatBytes(s.prepared.imageSize)}, ${shortDigest(s.prepared.imageSHA256)})` : sourceTitle(s.form).name;
  startRun(name, [...bootDrives, ...drives.filter((d) => d.path === configDrive)], configDrive);
  const plan = newJob();
  set({ job: plan });
  let planned;
  try {
    planned = await api.planFlash(
      plan,
      {
        image,
        targets: targetsOf(bootDrives),
        unmount: true,
        allowFixed: drives.some((d) => s.drives.find((x) => x.path === d.path)?.fixed),
        verify: s.settings.readBack,
        config,
        configTo: configDrive ? targetsOf(drives.filter((d) => d.path === configDrive))[0] : null,
      },
      lineSink((line) => updateRun(() => ({ plan: line }))),
    );
  } catch (e) {
    set({ run: null, job: null });
    if (!wasCancelled(e)) say("flash", errorMessage(e));
    return;
  }
  updateRun(() => ({ plan: null }));
  if (gen !== get().gen || !(await ask(planned, drives)) || gen !== get().gen) {
    void api.dropPlan(plan);
    set({ run: null, job: null });
    return;
  }
  updateRun(() => ({ phase: "writing" }));
  const job = newJob();
  set({ job });
  try {
    const run = await api.runFlash(job, plan, driveSinks(drives));
    if (run.record || run.recordError) updateRun(() => ({ record: { path: run.record, error: run.recordError } }));
    await finish(run.flashed);
  } catch (e) {
    endAll(e);
  }
}

/** One drive's Cancel: that drive stops (left blank), the others go on. */
export function cancelDrive(path: string) {
  const job = get().job;
  if (job === null) return;
  updateRun((r) => ({ drives: r.drives.map((d) => (d.drive.path === path ? { ...d, cancelling: true } : d)) }));
  void api.cancelTarget(job, path);
}

/** The same image again onto the drives that did not take it (asked again before erasing). */
export function retryFailed() {
  const run = get().run;
  if (!run) return;
  const failed = run.drives.filter((d) => !d.report?.ok && d.report?.errorKind !== "badInput").map((d) => d.drive.path);
  set((s) => ({ run: null, selected: failed.filter((p) => s.drives.some((d) => d.path === p && !d.unsuitable)), errors: {} }));
  if (get().selected.length === failed.length) void flash();
  else say("drive", "A drive that failed is no longer listed: plug it in again, then press Flash");
}

/** Cancel asks first: a cancelled flash leaves the drives unbootable. */
export function askCancel(yes: boolean | null) {
  if (yes === null) return updateRun(() => ({ askCancel: true }));
  updateRun(() => ({ askCancel: false }));
  if (yes) cancelJob();
}

/** The same image onto other drives: the ticks and the last run go, the image stays. */
export function flashAnother() {
  set((s) => ({
    run: null,
    selected: [],
    configDrive: null,
    labDrives: s.labDrives.map(() => null),
    labConfigDrives: s.labConfigDrives.map(() => null),
    errors: {},
  }));
  void refreshDrives();
}

export function startOver() {
  set({ selected: [] });
  void chooseSource({ ...emptyForm });
}

// Verify ---------------------------------------------------------------------------------------

export function editVerify(patch: Partial<State["verify"]>) {
  set((s) => ({ verify: { ...s.verify, ...patch } }));
}
/** A changed question: the last answer, about other inputs, goes. */
export function editVerifyInput(patch: Partial<Pick<State["verify"], "path" | "kind" | "expected" | "size">>) {
  set((s) => ({ verify: { ...s.verify, ...patch, ...(s.verify.running ? {} : { result: null, line: null }) }, errors: { ...s.errors, verify: undefined } }));
}

export async function chooseVerifyFile() {
  const chosen = await open({ multiple: false, directory: false }).catch(() => null);
  if (typeof chosen === "string") editVerifyInput({ path: chosen });
}

export async function verify() {
  clearErrors();
  const v = get().verify;
  const value = v.expected.trim();
  const expected =
    v.kind === "image"
      ? ({ kind: "image", path: value } as const)
      : v.kind === "sidecar"
        ? ({ kind: "sidecar", location: value } as const)
        : ({ kind: "digest", sha256: value } as const);
  const size = v.kind === "digest" && v.size.trim() ? Number(v.size.trim()) : null;
  if (size !== null && !Number.isSafeInteger(size)) {
    return say("verify", "The size must be a whole number of bytes.", "verify-size");
  }
  const job = newJob();
  editVerify({ job, running: true, result: null, line: { text: "Starting…", percent: null } });
  try {
    const result = await api.verify(job, v.path.trim(), expected, size, lineSink((line) => editVerify({ line })));
    editVerify({
      running: false,
      result,
      line: { text: `Read ${formatBytes(result.size)}`, percent: 100, outcome: result.match ? "good" : "bad" },
    });
  } catch (e) {
    const cancelled = wasCancelled(e);
    editVerify({ running: false, line: cancelled ? { text: "Cancelled", percent: null, outcome: "bad" } : null });
    if (!cancelled) say("verify", errorMessage(e), "verify-path");
  } finally {
    editVerify({ job: null });
  }
}

export function cancelVerify() {
  const job = get().verify.job;
  if (job !== null) void api.cancel(job);
}

// Settings -------------------------------------------------------------------------------------

export function setSetting(key: "checkFirst" | "readBack" | "eject", on: boolean) {
  localStorage.setItem(SETTINGS[key], on ? "1" : "0");
  set((s) => ({ settings: { ...s.settings, [key]: on } }));
  // Checking first, with an image already chosen: check it now, as choosing it would have.
  const s = get();
  if (key === "checkFirst" && on && s.streams !== null && !s.prepared && !s.check && !s.run) void check();
}
export function setMaxGiB(maxGiB: string) {
  set((s) => ({ settings: { ...s.settings, maxGiB } }));
}

export async function loadSettings() {
  try {
    const [info, cache] = await Promise.all([api.appInfo(), api.cacheInfo()]);
    set((s) => ({
      settings: {
        ...s.settings,
        cachePath: cache.path,
        cacheBytes: cache.bytes,
        caCert: info.caCert,
        incusRoot: info.incusRoot,
        recordsDir: info.recordsDir,
        version: info.version,
      },
    }));
  } catch (e) {
    say("settings", errorMessage(e));
  }
}

type SettingError = "caError" | "incusRootError" | "recordsError";

/** Saves a setting through `save`; its refusal, as a sentence, goes to `error` under it. */
async function saveSetting(error: SettingError, save: () => Promise<void>) {
  set((s) => ({ settings: { ...s.settings, [error]: "" } }));
  try {
    await save();
  } catch (e) {
    const text = sentence(errorMessage(e));
    set((s) => ({ settings: { ...s.settings, [error]: text } }));
  }
  await loadSettings();
}
/** A lab's own CA, trusted beside the system's certificates for every download. */
export const setCaCert = (path: string | null) => saveSetting("caError", () => api.setCaCert(path));
/** IncusOS indexes checked against a private mirror's root certificate (`null`: IncusOS's own). */
export const setIncusRoot = (path: string | null) => saveSetting("incusRootError", () => api.setIncusRoot(path));
export async function chooseIncusRoot() {
  const chosen = await open({ multiple: false, directory: false }).catch(() => null);
  if (typeof chosen === "string") await setIncusRoot(chosen);
}
/** Every flash's record kept in a folder the operator chose (`null`: none kept). */
export const setRecordsDir = (dir: string | null) => saveSetting("recordsError", () => api.setRecordsDir(dir));
export async function chooseRecordsDir() {
  const chosen = await open({ multiple: false, directory: true }).catch(() => null);
  if (typeof chosen === "string") await setRecordsDir(chosen);
}
export async function chooseCaCert() {
  const chosen = await open({ multiple: false, directory: false }).catch(() => null);
  if (typeof chosen === "string") await setCaCert(chosen);
}
export async function clearCache() {
  await api.clearCache().catch((e) => say("settings", errorMessage(e)));
  await loadSettings();
}

/** Start-up: drives now and as they come and go, files dropped on the window, the cache folder. */
export function start() {
  void refreshDrives();
  void api.watchDrives(newJob(), () => void refreshDrives()).catch((e) => say("window", errorMessage(e)));
  void getCurrentWebview()
    .onDragDropEvent((e) => {
      const s = get();
      if (e.payload.type === "drop" && e.payload.paths.length > 0 && !s.run && !s.confirm && !s.draft) {
        set({ tab: "flash" });
        void chooseSource({ ...get().form, kind: "file", filePath: e.payload.paths[0] });
      }
    })
    .catch((e) => say("window", `Dropping files is unavailable: ${errorMessage(e)}`));
  void loadSettings();
}
