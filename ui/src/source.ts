// The chosen source, read from the form: what it is called, whether enough of it is given, and
// the command argument it becomes. Pure, so it is unit-tested.
import type { SourceSpec } from "./api";
import type { Form, Kind } from "./store";

const opt = (s: string) => s.trim() || null;

/** Whether enough of the source is given to try it. */
export function sourceGiven(f: Form): boolean {
  switch (f.kind) {
    case "file":
      return f.filePath.trim() !== "";
    case "url":
      return f.url.trim() !== "";
    case "talos":
      return f.talosVersion.trim() !== "";
    case "incus":
      return true;
    case "talosBuild":
      return f.buildConfig.trim() !== "";
    case "lab":
      return f.labFile.trim() !== "";
  }
}

/** Whether the image must be checked (prepared) before writing: the setting says so, the
 * engine says the source does not stream (`streams`, from the probe: a labctl build, an
 * IncusOS seed), or a Talos machine config is to be built into a config image beside it. */
export function mustCheck(f: Form, checkFirst: boolean, streams: boolean | null): boolean {
  if (f.kind === "lab") return false; // the lab's plan prepares its image once, for every node
  return checkFirst || streams === false || (f.kind === "talos" && f.cfgUserData.trim() !== "");
}

/** The image's name and where it comes from, for the Image tile. */
export function sourceTitle(f: Form): { name: string; from: string } {
  const base = (p: string) => p.trim().split("/").filter(Boolean).pop() ?? p;
  switch (f.kind) {
    case "file":
      return { name: base(f.filePath), from: f.filePath.trim() };
    case "url": {
      const url = f.url.trim();
      let host = url;
      try {
        host = new URL(url).host;
      } catch {
        /* shown as typed */
      }
      return { name: base(url.split("?")[0]), from: host };
    }
    case "talos":
      return {
        name: `Talos ${f.talosVersion.trim()} ${f.platform}-${f.arch}${f.secureboot ? "-secureboot" : ""}.${f.format}`,
        from: f.factoryUrl.replace(/^https?:\/\//, ""),
      };
    case "incus":
      return { name: `IncusOS ${f.incusChannel} ${f.incusArch}`, from: f.incusIndex.replace(/^https?:\/\//, "") };
    case "talosBuild":
      return { name: base(f.buildConfig), from: "labctl ImageBuild config" };
    case "lab":
      return { name: base(f.labFile), from: "lab file: one image, many nodes" };
  }
}

/** The field naming the source, for `aria-invalid` when it is refused. */
export function sourceField(kind: Kind): string | null {
  return { file: "file-path", url: "url", talos: "talos-version", incus: null, talosBuild: "build-config", lab: "lab-file" }[kind];
}

/** The command argument for the chosen source. */
export function sourceSpec(f: Form): SourceSpec {
  const sha256 = opt(f.typedDigest);
  switch (f.kind) {
    case "url":
      return { kind: "url", url: f.url.trim(), sha256, allowUnverified: f.allowUnverified };
    case "talos": {
      const schematic = opt(f.schematic);
      return {
        kind: "talos",
        factoryUrl: f.factoryUrl.trim(),
        factoryToken: opt(f.factoryToken),
        version: f.talosVersion.trim(),
        extensions: schematic ? [] : f.extensions,
        kernelArgs: schematic ? [] : f.kernelArgs.split(/\s+/).filter(Boolean),
        // Board overlays are for single-board computers: offered, and sent, for arm64 only.
        overlay: schematic || f.arch !== "arm64" ? null : opt(f.overlay),
        schematic,
        platform: f.platform,
        arch: f.arch,
        secureboot: f.secureboot,
        format: f.format,
        sha256,
        allowUnverified: false,
      };
    }
    case "incus":
      return {
        kind: "incus",
        indexUrl: f.incusIndex.trim(),
        baseUrl: f.incusBase.trim(),
        channel: f.incusChannel,
        arch: f.incusArch,
        seed: opt(f.incusSeed),
      };
    case "talosBuild":
      return { kind: "talosBuild", config: f.buildConfig.trim() };
    case "file":
      return { kind: "file", path: f.filePath.trim(), sha256 };
    case "lab":
      throw new Error("a lab file is many nodes, not one image: it is flashed through its plan");
  }
}

/** The largest image accepted, in bytes, from Settings' GiB field. */
export function maxImageSize(gib: string): number {
  const n = Number(gib.trim() || "4");
  if (!(n > 0)) throw new Error("The largest image size (Settings) must be a number of GiB above 0.");
  return Math.round(n * 2 ** 30);
}
