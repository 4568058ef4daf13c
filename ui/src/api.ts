// Typed wrappers over the app's commands. The Rust side validates every argument again.
import { Channel, invoke } from "@tauri-apps/api/core";

export type Stage =
  | "download"
  | "checkCache"
  | "decompress"
  | "checkImage"
  | "hashImage"
  | "write"
  | "readBack";

export interface Progress {
  stage: Stage;
  done: number;
  total: number | null;
  target?: string;
}

export interface CommandError {
  message: string;
  kind: "digestMismatch" | "badInput" | "cancelled" | "failure";
}

export type DigestSource = "sidecar" | "sha256sum" | "sha256sums" | "index" | "flag" | "unverified";

export type SourceSpec =
  | { kind: "file"; path: string; sha256: string | null }
  | { kind: "url"; url: string; sha256: string | null; allowUnverified: boolean }
  | {
      kind: "talos";
      factoryUrl: string;
      version: string;
      extensions: string[];
      kernelArgs: string[];
      schematic: string | null;
      platform: string;
      arch: string;
      secureboot: boolean;
      format: string;
      sha256: string | null;
      allowUnverified: boolean;
    }
  | { kind: "incus"; indexUrl: string; baseUrl: string; channel: string; arch: string; seed: string | null }
  | { kind: "talosBuild"; config: string };

export interface Prepared {
  imagePath: string;
  imageSHA256: string;
  imageSize: number;
  archiveSHA256: string;
  digestSource: DigestSource;
  /** The cidata image a labctl ImageBuild made beside the boot image. */
  config: Cidata | null;
}

export interface Drive {
  path: string;
  model: string;
  vendor: string;
  serial: string;
  size: number;
  bus: string;
  removable: boolean;
  readOnly: boolean;
  system: boolean;
  mountpoints: string[];
  /** What the flash checks the drive against: a drive that changed since it was listed is refused. */
  identity: DriveIdentity;
}

/** Why a drive cannot take the image: a badge for the list, and the reason as a clause. */
export interface Unsuitable {
  badge: string;
  reason: string;
}

/** A drive as the list offers it. */
export interface DriveRow extends Drive {
  unsuitable: Unsuitable | null;
  fixed: boolean;
}

/** What ejecting a drive did. */
export type Ejected = { kind: "poweredOff" } | { kind: "detached" } | { kind: "kept"; why: string };

export interface DriveIdentity {
  devnum: string;
  diskseq: number | null;
  serial: string;
  size: number;
}

export type DriveEvent =
  | { event: "added"; drive: Drive }
  | { event: "removed"; path: string }
  | { event: "changed"; drive: Drive };


export interface TargetReport {
  path: string;
  ok: boolean;
  bytesWritten: number;
  verifiedSHA256: string | null;
  error: string | null;
}

export interface Verification {
  path: string;
  size: number;
  sha256: string;
  expectedSHA256: string;
  /** What vouches for the expected digest (an archive's checksum: the image inside it). */
  expectedFrom: string;
  archiveSHA256?: string;
  match: boolean;
}

export type Expected =
  | { kind: "digest"; sha256: string }
  | { kind: "image"; path: string }
  | { kind: "sidecar"; location: string };

/** What a planned flash will write, in the engine's words, for the confirmation. */
export interface PlanView {
  lines: string[];
  warnings: string[];
}

/** What a flash straight from the source did. */
export interface Flashed {
  imageSHA256: string;
  imageSize: number;
  archiveSHA256: string;
  digestSource: DigestSource;
  targets: TargetReport[];
  warnings?: string[];
}

export interface Cidata {
  path: string;
  sha256: string;
  size: number;
}

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
  appInfo: () => invoke<{ version: string; cacheDir: string; caCert: string | null }>("app_info"),
  setCaCert: (path: string | null) => invoke<void>("set_ca_cert", { path }),
  cancel: (job: number) => invoke<boolean>("cancel", { job }),
  /** `source`: the chosen image file, so the drive holding it is marked. */
  listDrives: (showAll: boolean, imageSize: number | null, source: string | null) =>
    invoke<DriveRow[]>("list_drives", { showAll, imageSize, source }),
  eject: (path: string) => invoke<Ejected>("eject", { path }),
  watchDrives: (job: number, onEvent: (e: DriveEvent) => void) =>
    invoke<void>("watch_drives", { job, onEvent: channel(onEvent) }),
  prepare: (job: number, source: SourceSpec, maxImageSize: number | null, onProgress: (p: Progress) => void) =>
    invoke<Prepared>("prepare", { job, source, maxImageSize, onProgress: channel(onProgress) }),
  flash: (
    job: number,
    spec: {
      imagePath: string;
      imageSHA256: string;
      imageSize: number;
      targets: { path: string; identity: DriveIdentity }[];
      unmount: boolean;
      allowFixed: boolean;
      verify: boolean;
      config: string | null;
    },
    onProgress: (p: Progress) => void,
  ) => invoke<TargetReport[]>("flash", { job, spec, onProgress: channel(onProgress) }),
  /** Plans a flash straight from the source (streamed), nothing written; run or drop it. */
  planFlash: (
    job: number,
    spec: {
      source: SourceSpec;
      maxImageSize: number | null;
      targets: { path: string; identity: DriveIdentity }[];
      unmount: boolean;
      allowFixed: boolean;
      verify: boolean;
    },
    onProgress: (p: Progress) => void,
  ) => invoke<PlanView>("plan_flash", { job, spec, onProgress: channel(onProgress) }),
  runFlash: (job: number, plan: number, onProgress: (p: Progress) => void) =>
    invoke<Flashed>("run_flash", { job, plan, onProgress: channel(onProgress) }),
  dropPlan: (plan: number) => invoke<void>("drop_plan", { plan }),
  verify: (
    job: number,
    path: string,
    expected: Expected,
    size: number | null,
    onProgress: (p: Progress) => void,
  ) => invoke<Verification>("verify", { job, path, expected, size, onProgress: channel(onProgress) }),
  cacheInfo: () => invoke<{ path: string; bytes: number }>("cache_info"),
  clearCache: () => invoke<void>("clear_cache"),
  buildCidata: (spec: {
    userData: string;
    hostname: string;
    instanceId: string | null;
    networkConfig: string | null;
    output: string;
  }) => invoke<Cidata>("build_cidata", { spec }),
  talosVersions: (factoryUrl: string) =>
    invoke<{ version: string; prerelease: boolean }[]>("talos_versions", { factoryUrl }),
  talosExtensions: (factoryUrl: string, version: string) =>
    invoke<{ name: string; description: string }[]>("talos_extensions", { factoryUrl, version }),
};

/** The one sentence to show for a failed command. */
export function errorMessage(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) {
    return String((e as CommandError).message);
  }
  return String(e);
}
