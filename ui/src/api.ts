// Typed wrappers over the app's commands. The Rust side validates every argument again.
import { Channel, invoke } from "@tauri-apps/api/core";

import type {
  AppInfo,
  CacheInfo,
  Cidata,
  CidataSpec,
  CommandError,
  DriveEvent,
  DriveRow,
  Ejected,
  ErrorKind,
  ExpectedSpec,
  Extension,
  Overlay,
  FlashSpec,
  FlashRun,
  LabSpec,
  LabView,
  LabRun,
  PlanView,
  Prepared,
  ProbeView,
  Progress,
  SourceSpec,
  Verification,
  Version,
} from "./bindings";

// The types are generated from the app's Rust types (bindings.ts); only the calls are written here.
export type * from "./bindings";

let nextJob = 1;
/** A fresh job id; `cancel(job)` stops that job. */
export function newJob(): number {
  return nextJob++;
}

function channel<T>(onMessage: (m: T) => void): Channel<T> {
  const c = new Channel<T>();
  c.onmessage = onMessage;
  return c;
}

export const api = {
  appInfo: () => invoke<AppInfo>("app_info"),
  setCaCert: (path: string | null) => invoke<void>("set_ca_cert", { path }),
  setIncusRoot: (path: string | null) => invoke<void>("set_incus_root", { path }),
  cancel: (job: number) => invoke<boolean>("cancel", { job }),
  /** Stops one drive (its path as progress names it) of the running flash or lab `job`; the
   *  others go on. False when no such job runs or it writes no such drive; rejects (badInput)
   *  for drives the privileged helper writes, which only the whole job's cancel stops. */
  cancelTarget: (job: number, path: string) => invoke<boolean>("cancel_target", { job, path }),
  /** `source`: the chosen image file, so the drive holding it is marked. */
  listDrives: (showAll: boolean, imageSize: number | null, source: string | null) =>
    invoke<DriveRow[]>("list_drives", { showAll, imageSize, source }),
  eject: (path: string) => invoke<Ejected>("eject", { path }),
  watchDrives: (job: number, onEvent: (e: DriveEvent) => void) =>
    invoke<void>("watch_drives", { job, onEvent: channel(onEvent) }),
  prepare: (job: number, source: SourceSpec, maxImageSize: number | null, onProgress: (p: Progress) => void) =>
    invoke<Prepared>("prepare", { job, source, maxImageSize, onProgress: channel(onProgress) }),
  /** Plans a flash (from the source, or of a checked image), nothing written; run or drop it. */
  planFlash: (job: number, spec: FlashSpec, onProgress: (p: Progress) => void) =>
    invoke<PlanView>("plan_flash", { job, spec, onProgress: channel(onProgress) }),
  runFlash: (job: number, plan: number, onProgress: (p: Progress) => void) =>
    invoke<FlashRun>("run_flash", { job, plan, onProgress: channel(onProgress) }),
  /** Keeps every flash's record in `dir` (`null`: keeps none). */
  setRecordsDir: (dir: string | null) => invoke<void>("set_records_dir", { dir }),
  dropPlan: (plan: number) => invoke<void>("drop_plan", { plan }),
  /** Reads a lab file and builds its nodes' config images, held under `job`. */
  loadLab: (job: number, path: string) => invoke<LabView>("load_lab", { job, path }),
  /** Plans a lab (the image prepared once, every node's drive approved); run or drop it. */
  planLab: (job: number, spec: LabSpec, onProgress: (p: Progress) => void) =>
    invoke<PlanView>("plan_lab", { job, spec, onProgress: channel(onProgress) }),
  runLab: (job: number, plan: number, onProgress: (p: Progress) => void) =>
    invoke<LabRun>("run_lab", { job, plan, onProgress: channel(onProgress) }),
  /** Whether the engine streams this source, or has it checked first; refuses an unusable one. */
  /** What the chosen source is (where, the digest that vouches, sizes, warnings, whether it
   * streams), learnt without downloading it; refuses what a flash would refuse, in its words. */
  probeSource: (job: number, source: SourceSpec, maxImageSize: number | null, onProgress: (p: Progress) => void) =>
    invoke<ProbeView>("probe_source", { job, source, maxImageSize, onProgress: channel(onProgress) }),
  verify: (
    job: number,
    path: string,
    expected: ExpectedSpec,
    size: number | null,
    onProgress: (p: Progress) => void,
  ) => invoke<Verification>("verify", { job, path, expected, size, onProgress: channel(onProgress) }),
  cacheInfo: () => invoke<CacheInfo>("cache_info"),
  clearCache: () => invoke<void>("clear_cache"),
  buildCidata: (spec: CidataSpec) => invoke<Cidata>("build_cidata", { spec }),
  talosVersions: (factoryUrl: string, factoryToken: string | null) =>
    invoke<Version[]>("talos_versions", { factoryUrl, factoryToken }),
  talosExtensions: (factoryUrl: string, factoryToken: string | null, version: string) =>
    invoke<Extension[]>("talos_extensions", { factoryUrl, factoryToken, version }),
  talosOverlays: (factoryUrl: string, factoryToken: string | null, version: string) =>
    invoke<Overlay[]>("talos_overlays", { factoryUrl, factoryToken, version }),
};

/** Whether a command failed because it was cancelled (its typed kind, never its wording). */
export function wasCancelled(e: unknown): boolean {
  return !!e && typeof e === "object" && "kind" in e && (e as CommandError).kind === "cancelled";
}

/** What sort of failure a command's error is (`failure` for anything not the engine's). */
export function errorKind(e: unknown): ErrorKind {
  return e && typeof e === "object" && "kind" in e ? (e as CommandError).kind : "failure";
}

/** The one sentence to show for a failed command. */
export function errorMessage(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) {
    return String((e as CommandError).message);
  }
  return String(e);
}
