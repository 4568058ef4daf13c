// The source dialog: a path, a URL, a Talos Image Factory image, an IncusOS release or a labctl
// ImageBuild config. It edits a copy; "Use this image" makes it the chosen source.
import * as act from "../actions";
import type { Form, State } from "../store";
import { Check, ErrorText, Modal, Select, TextField } from "./common";

const TITLES = {
  file: "An image file",
  url: "An image from a URL",
  talos: "Talos Linux from an Image Factory",
  incus: "IncusOS",
  talosBuild: "A labctl ImageBuild config",
  lab: "A lab file: one image, many nodes",
};

export function SourceDialog({ s }: { s: State }) {
  const d = s.draft;
  return (
    <Modal id="source-dialog" open={d !== null} labelledBy="source-title" onCancel={act.closeSource}>
      {d && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            act.useSource();
          }}
        >
          <h2 id="source-title">{TITLES[d.kind]}</h2>
          <Fields d={d} s={s} />
          <ErrorText id="error-source" text={s.errors.source} />
          {s.probing !== null && (
            <p id="source-probing" class="hint" aria-live="polite">
              Asking {d.kind === "talos" ? "the Image Factory" : d.kind === "incus" ? "IncusOS's index" : "the server"} for it…
            </p>
          )}
          <div class="buttons">
            <button type="button" id="close-source" onClick={act.closeSource}>
              Cancel
            </button>
            <button type="submit" id="use-source" class="primary" disabled={s.probing !== null}>
              {s.probing !== null ? "Checking…" : "Use this image"}
            </button>
          </div>
        </form>
      )}
    </Modal>
  );
}

function Fields({ d, s }: { d: Form; s: State }) {
  const edit = act.editDraft;
  const invalid = (id: string) => s.invalid === id;
  switch (d.kind) {
    case "file":
      return (
        <>
          <TextField id="file-path" label="Image file" value={d.filePath} onValue={(filePath) => edit({ filePath })} placeholder="/home/me/talos.raw.xz" invalid={invalid("file-path")} />
          <button type="button" aria-label="Choose the image file" onClick={() => void act.chooseFor("filePath")}>
            Choose…
          </button>
          <Digest d={d} />
        </>
      );
    case "url":
      return (
        <>
          <TextField id="url" type="url" label="URL" value={d.url} onValue={(url) => edit({ url })} placeholder="https://…/image.raw.xz" invalid={invalid("url")} />
          <Check id="allow-unverified" label="Accept an image no published digest covers" checked={d.allowUnverified} onCheck={(allowUnverified) => edit({ allowUnverified })} />
          <Digest d={d} />
        </>
      );
    case "talos":
      return (
        <>
          <TextField id="factory-url" type="url" label="Image Factory" value={d.factoryUrl} onValue={(factoryUrl) => edit({ factoryUrl })} />
          <details>
            <summary>Enterprise factory</summary>
            <TextField
              id="factory-token"
              type="password"
              label="Download token (never shown; or put user:password@ in the factory's address)"
              value={d.factoryToken}
              onValue={(factoryToken) => edit({ factoryToken })}
            />
          </details>
          <div class="row">
            <TextField id="talos-version" label="Version" value={d.talosVersion} list="talos-versions" placeholder="v1.12.4" onValue={(talosVersion) => edit({ talosVersion })} invalid={invalid("talos-version")} />
            <datalist id="talos-versions">
              {s.versions.map((v) => (
                <option key={v.version} value={v.version}>
                  {v.prerelease ? `${v.version} (pre-release)` : v.version}
                </option>
              ))}
            </datalist>
            {s.loadingVersions ? (
              <span aria-live="polite">
                Loading versions…{" "}
                <button type="button" id="cancel-versions" onClick={act.cancelVersions}>
                  Stop loading
                </button>
              </span>
            ) : (
              <button type="button" id="load-versions" onClick={() => void act.loadVersions()}>
                Load versions
              </button>
            )}
          </div>
          <div class="row">
            <Select id="talos-platform" label="Platform" value={d.platform} options={["metal", "nocloud"]} onValue={(platform) => edit({ platform })} />
            <Select id="talos-arch" label="Architecture" value={d.arch} options={["amd64", "arm64"]} onValue={(arch) => edit({ arch })} />
            <Select id="talos-format" label="Format" value={d.format} options={["raw.xz", "raw.zst", "iso"]} onValue={(format) => edit({ format })} />
            <Check id="talos-secureboot" label="Secure boot" checked={d.secureboot} onCheck={(secureboot) => edit({ secureboot })} />
          </div>
          {d.arch === "arm64" && (
            <div class="field inline">
              <label for="talos-overlay">Board (single-board computers)</label>
              <select id="talos-overlay" value={d.overlay} onChange={(e) => edit({ overlay: e.currentTarget.value })}>
                <option value="">{s.overlays.length === 0 ? "none (load the versions to list boards)" : "none"}</option>
                {s.overlays.map((o) => (
                  <option key={o.name} value={o.name}>
                    {o.name} ({o.image})
                  </option>
                ))}
              </select>
            </div>
          )}
          <details>
            <summary>Extensions and kernel arguments</summary>
            <fieldset class="extensions">
              <legend>Extensions {s.extensions.length === 0 && "(load the versions to list them)"}</legend>
              {s.extensions.map((x) => (
                <Check
                  key={x.name}
                  id={`ext-${x.name.replace(/\W/g, "-")}`}
                  label={x.name.replace(/^siderolabs\//, "")}
                  checked={d.extensions.includes(x.name)}
                  onCheck={(on) => edit({ extensions: on ? [...d.extensions, x.name] : d.extensions.filter((n) => n !== x.name) })}
                />
              ))}
            </fieldset>
            <TextField id="talos-kernel-args" label="Extra kernel arguments (space-separated)" value={d.kernelArgs} onValue={(kernelArgs) => edit({ kernelArgs })} />
            <TextField id="talos-schematic" label="Or a schematic ID (instead of extensions and kernel arguments)" value={d.schematic} onValue={(schematic) => edit({ schematic })} />
          </details>
          <details>
            <summary>Machine config (optional)</summary>
            <TextField id="cfg-user-data" label="Machine config file" value={d.cfgUserData} onValue={(cfgUserData) => edit({ cfgUserData })} placeholder="/home/me/controlplane.yaml" />
            <button type="button" aria-label="Choose the machine config file" onClick={() => void act.chooseFor("cfgUserData")}>
              Choose…
            </button>
            <TextField id="cfg-hostname" label="Hostname" value={d.cfgHostname} onValue={(cfgHostname) => edit({ cfgHostname })} placeholder="cp-1" />
            <TextField id="cfg-network" label="Network config file (optional)" value={d.cfgNetwork} onValue={(cfgNetwork) => edit({ cfgNetwork })} />
          </details>
          <Digest d={d} />
        </>
      );
    case "incus":
      return (
        <>
          <div class="row">
            <Select id="incus-channel" label="Channel" value={d.incusChannel} options={["stable", "testing"]} onValue={(incusChannel) => edit({ incusChannel })} />
            <Select id="incus-arch" label="Architecture" value={d.incusArch} options={["x86_64", "aarch64"]} onValue={(incusArch) => edit({ incusArch })} />
          </div>
          <TextField id="incus-seed" label="Install seed folder (optional)" value={d.incusSeed} onValue={(incusSeed) => edit({ incusSeed })} placeholder="/home/me/seed" />
          <details>
            <summary>Where the releases are</summary>
            <TextField id="incus-index" type="url" label="Index" value={d.incusIndex} onValue={(incusIndex) => edit({ incusIndex })} />
            <TextField id="incus-base" type="url" label="Files under" value={d.incusBase} onValue={(incusBase) => edit({ incusBase })} />
          </details>
        </>
      );
    case "talosBuild":
      return (
        <>
          <TextField id="build-config" label="ImageBuild config (labctl YAML)" value={d.buildConfig} onValue={(buildConfig) => edit({ buildConfig })} placeholder="/home/me/lab/talos/cp-1.yaml" invalid={invalid("build-config")} />
          <button type="button" aria-label="Choose the ImageBuild config" onClick={() => void act.chooseFor("buildConfig")}>
            Choose…
          </button>
          <p class="hint">Its boot image and its config image are built and checked first; both digests are shown.</p>
        </>
      );
    case "lab":
      return (
        <>
          <TextField id="lab-file" label="Lab file (YAML)" value={d.labFile} onValue={(labFile) => edit({ labFile })} placeholder="/home/me/lab/lab.yaml" invalid={invalid("lab-file")} />
          <button type="button" aria-label="Choose the lab file" onClick={() => void act.chooseFor("labFile")}>
            Choose…
          </button>
          <p class="hint">Its image is written to every node's stick, each with the node's own config (hostname, machine config, network config).</p>
        </>
      );
  }
}

/** A digest from elsewhere (a release note, a colleague), which the image must match. */
function Digest({ d }: { d: Form }) {
  return (
    <details>
      <summary>Advanced</summary>
      <TextField id="typed-digest" label="Expected SHA-256, if you have it from elsewhere" value={d.typedDigest} onValue={(typedDigest) => act.editDraft({ typedDigest })} />
    </details>
  );
}
