// The digest card of a checked image: its name and size, the digests to compare (the image's,
// the download's, the config image's), what vouches for them, a field to paste a digest into,
// and, when nothing the publisher published vouches for it, "I compared these digests", which
// Flash then waits for.
import * as act from "../actions";
import { checkDigest, formatBytes, sentence } from "../logic";
import type { State } from "../store";
import { Check, Digest, SourceBadge } from "./common";

export function DigestCard({ s }: { s: State }) {
  const p = s.prepared!;
  const shown = [p.imageSHA256, p.archiveSHA256, s.config?.sha256 ?? ""];
  const checks = shown.map((d) => checkDigest(s.pasted, d));
  const verdict = checks.includes("match")
    ? { text: "✓ Match", cls: "good" }
    : checks[0] === "empty"
      ? { text: "", cls: "" }
      : checks[0] === "invalid"
        ? { text: "Not a SHA-256 digest (64 hex digits)", cls: "bad" }
        : { text: "✗ This is not one of the digests shown", cls: "bad" };
  return (
    <section id="digest-card" class="card-wide" aria-labelledby="digest-title">
      <h2 id="digest-title">
        {p.imagePath.split("/").pop()} · {formatBytes(p.imageSize)}
      </h2>
      <Digest id="image-sha" label="image SHA-256" hex={p.imageSHA256} />
      {p.archiveSHA256 !== p.imageSHA256 && <Digest id="archive-sha" label={s.form.kind === "file" ? "file SHA-256 (compressed)" : "download SHA-256"} hex={p.archiveSHA256} />}
      {s.config && <Digest id="config-sha" label="config image SHA-256" hex={s.config.sha256} />}
      <SourceBadge source={p.digestSource} signedBy={p.signedBy} id="digest-source" />
      {p.warnings.map((w, i) => (
        <p key={i} id={`prepared-warning-${i}`} class="warning">
          Warning: {sentence(w)}
        </p>
      ))}
      <div class="row">
        <div class="field grow">
          <label for="paste-digest">Paste a digest to compare</label>
          <input id="paste-digest" type="text" spellcheck={false} value={s.pasted} onInput={(e) => act.setPasted(e.currentTarget.value)} />
        </div>
        <p id="paste-result" class={verdict.cls} aria-live="polite">
          {verdict.text}
        </p>
      </div>
      {/* Asked only where nothing the publisher published vouches: else the engine compared. */}
      {p.digestSource === "unverified" && <Check id="confirm-digests" label="I compared these digests" checked={s.confirmed} onCheck={act.setConfirmed} />}
    </section>
  );
}
