// The window's one state. Components render it; actions (actions.ts) are the only writers.
// Updates are synchronous; the updates of one event are rendered once, right after it (a
// microtask), so what a click changed is on screen before the next input is handled.
import { useLayoutEffect, useReducer } from "preact/hooks";
import type { Cidata, Drive, DriveRow, ErrorKind, Flashed, LabView, Prepared, ProbeView, Summary, TargetReport, Verification } from "./api";

export type Tab = "flash" | "verify" | "settings";
export type Kind = "file" | "url" | "talos" | "incus" | "talosBuild" | "lab";
/** Where an error is shown: the tile or tab whose action failed, or the window itself. */
export type Place = "image" | "source" | "drive" | "flash" | "verify" | "settings" | "window";

/** Everything that says which image to flash, as typed or chosen. */
export interface Form {
  kind: Kind;
  filePath: string;
  url: string;
  allowUnverified: boolean;
  factoryUrl: string;
  /** An Enterprise factory's download token; kept in memory only, never shown. */
  factoryToken: string;
  talosVersion: string;
  extensions: string[];
  kernelArgs: string;
  /** A board overlay's official name (single-board computers, arm64); "" for none. */
  overlay: string;
  schematic: string;
  platform: string;
  arch: string;
  format: string;
  secureboot: boolean;
  incusIndex: string;
  incusBase: string;
  incusChannel: string;
  incusArch: string;
  incusSeed: string;
  buildConfig: string;
  labFile: string;
  typedDigest: string;
  cfgUserData: string;
  cfgHostname: string;
  cfgNetwork: string;
}

export const emptyForm: Form = {
  kind: "file",
  filePath: "",
  url: "",
  allowUnverified: false,
  factoryUrl: "https://factory.talos.dev",
  factoryToken: "",
  talosVersion: "",
  extensions: [],
  kernelArgs: "",
  overlay: "",
  schematic: "",
  // The platform that reads the cidata config the Talos source builds from a machine config
  // (the engine refuses a config beside any other); with no config it boots as metal does.
  platform: "nocloud",
  arch: "amd64",
  format: "raw.xz",
  secureboot: false,
  incusIndex: "https://images.linuxcontainers.org/os/index.sjson",
  incusBase: "https://images.linuxcontainers.org/os",
  incusChannel: "stable",
  incusArch: "x86_64",
  incusSeed: "",
  buildConfig: "",
  labFile: "",
  typedDigest: "",
  cfgUserData: "",
  cfgHostname: "",
  cfgNetwork: "",
};

/** A progress line: its text, its bar (`null`: size unknown), and once ended, how. */
export interface Line {
  text: string;
  percent: number | null;
  outcome?: "good" | "bad";
}

/** One drive in a flash: its progress, then its report and what ejecting it did. */
export interface DriveRun {
  drive: Drive;
  /** Two sticks: this drive gets the config image, not the boot image. */
  config: boolean;
  /** A lab: the node this drive is for. */
  node?: string;
  line: Line;
  report?: TargetReport;
  eject?: { text: string; ok: boolean };
  /** Its own Cancel was pressed; the engine stops it while the others go on. */
  cancelling?: boolean;
}

export interface Run {
  /** Ejecting: written and read back, the drives being ejected (nothing else can start). */
  phase: "planning" | "writing" | "ejecting" | "done";
  /** "talos.raw (5.2 MB, e211…c5f9)" once known. */
  image: string;
  plan: Line | null;
  drives: DriveRun[];
  /** The flash's outcome: the image's digests, what vouched for them, and its warnings. */
  result: Flashed | null;
  /** Cancel was pressed and waits for its confirmation. */
  askCancel: boolean;
  /** The run failed as a whole (no drive has a report of its own): what sort of failure. */
  failure?: ErrorKind;
  /** A lab's record: where it was written, or why it was not. */
  record?: { path: string | null; error: string | null };
}

export interface Settings {
  checkFirst: boolean;
  readBack: boolean;
  eject: boolean;
  maxGiB: string;
  cachePath: string;
  cacheBytes: number | null;
  caCert: string | null;
  caError: string;
  /** The root IncusOS indexes are checked against (`null`: IncusOS's own). */
  incusRoot: string | null;
  incusRootError: string;
  /** Where every flash's record is written (`null`: none is kept; a lab's goes beside it). */
  recordsDir: string | null;
  recordsError: string;
  version: string;
}

export interface State {
  tab: Tab;
  form: Form;
  /** The source dialog's copy of the form, while it is open. */
  draft: Form | null;
  versions: { version: string; prerelease: boolean }[];
  extensions: { name: string; description: string }[];
  /** The version's board overlays, by name and the image that carries each. */
  overlays: { name: string; image: string }[];
  loadingVersions: boolean;
  /** Bumped whenever the source changes: work started for an older source is discarded. */
  gen: number;
  /** The engine's answer for the chosen source: it streams, or it is checked first (`null`:
   * not asked yet, or refused). */
  streams: boolean | null;
  /** What the engine found when the source was chosen (where it is, its size as its archive
   * records it, what vouches for it), before anything is downloaded. */
  found: ProbeView | null;
  /** The source dialog's source being asked for (its job), the dialog still open. */
  probing: number | null;
  check: Line | null;
  prepared: Prepared | null;
  /** The job that checked `prepared`: a flash names the image by it (the app keeps what the
   * engine proved). */
  preparedJob: number | null;
  config: Cidata | null;
  /** Where the config goes: a partition on the boot stick, or a ticked drive of its own
   * (`configDrive`, its path). */
  twoSticks: boolean;
  configDrive: string | null;
  /** A lab file loaded (its nodes with their config images), the job holding it, and each
   * node's drive (a path, in the nodes' order; `null`: none chosen yet). */
  lab: LabView | null;
  labJob: number | null;
  labDrives: (string | null)[];
  /** Two sticks per node (the engine says the release needs it): each node's config stick. */
  labConfigDrives: (string | null)[];
  confirmed: boolean;
  pasted: string;
  drives: DriveRow[];
  selected: string[];
  showAll: boolean;
  run: Run | null;
  /** The confirmation before erasing: the engine's plan (its summary, warnings and every
   * detail), each drive, and for a lab its number of nodes. */
  confirm: { summary: Summary; lines: string[]; warnings: string[]; drives: Drive[]; lab: number | null } | null;
  errors: Partial<Record<Place, string>>;
  /** The field an error is about (`aria-invalid`). */
  invalid: string | null;
  /** The job Cancel stops, while one runs. */
  job: number | null;
  verify: {
    /** The running check's job, for its Cancel. */
    job: number | null;
    path: string;
    kind: "digest" | "sidecar" | "image";
    expected: string;
    size: string;
    line: Line | null;
    running: boolean;
    result: Verification | null;
  };
  settings: Settings;
}

/** What is known about the chosen image: forgotten whenever the source changes. */
export const noImage = {
  streams: null,
  found: null,
  check: null,
  prepared: null,
  preparedJob: null,
  config: null,
  twoSticks: false,
  configDrive: null,
  lab: null,
  labJob: null,
  labDrives: [],
  labConfigDrives: [],
  confirmed: false,
  pasted: "",
} satisfies Partial<State>;

export function initialState(checkFirst: boolean, readBack: boolean, eject: boolean): State {
  return {
    tab: "flash",
    form: emptyForm,
    draft: null,
    versions: [],
    extensions: [],
    overlays: [],
    loadingVersions: false,
    probing: null,
    gen: 0,
    ...noImage,
    drives: [],
    selected: [],
    showAll: false,
    run: null,
    confirm: null,
    errors: {},
    invalid: null,
    job: null,
    verify: { job: null, path: "", kind: "digest", expected: "", size: "", line: null, running: false, result: null },
    settings: {
      checkFirst,
      readBack,
      eject,
      maxGiB: "4",
      cachePath: "",
      cacheBytes: null,
      caCert: null,
      caError: "",
      incusRoot: null,
      incusRootError: "",
      recordsDir: null,
      recordsError: "",
      version: "",
    },
  };
}

export interface Store<S> {
  get(): S;
  set(update: Partial<S> | ((s: S) => Partial<S>)): void;
  subscribe(listener: () => void): () => void;
}

export function createStore<S>(initial: S, schedule: (f: () => void) => void = queueMicrotask): Store<S> {
  let state = initial;
  let pending = false;
  const listeners = new Set<() => void>();
  return {
    get: () => state,
    set(update) {
      state = { ...state, ...(typeof update === "function" ? update(state) : update) };
      if (pending) return;
      pending = true;
      schedule(() => {
        pending = false;
        for (const l of listeners) l();
      });
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** Re-renders the calling component whenever the store changes; returns the current state. */
export function useStore<S>(store: Store<S>): S {
  const [, redraw] = useReducer((n: number) => n + 1, 0);
  useLayoutEffect(() => store.subscribe(() => redraw(undefined)), [store]);
  return store.get();
}
