// The flash as it runs and as it ended: one row per drive (Writing → Reading back, bar, rate, time
// left; then its outcome and what ejecting did), Cancel that asks first, the image's digests,
// and what to do next.
import { useLayoutEffect, useRef } from "preact/hooks";
import * as act from "../actions";
import { describeDrive, sentence } from "../logic";
import type { Run, State } from "../store";
import { Digest, ErrorText, ProgressLine, SourceBadge } from "./common";

export function RunPage({ s, run }: { s: State; run: Run }) {
  const heading = useRef<HTMLHeadingElement>(null);
  const done = run.phase === "done";
  // The page takes the focus when it opens (the Flash button it replaced is gone) and again with
  // the outcome, so it is read out and the next step is one Tab away.
  useLayoutEffect(() => {
    if (run.phase !== "ejecting") heading.current?.focus();
  }, [run.phase === "planning", done]);
  // The question takes the focus on its safe answer; when it goes, Cancel has it back.
  const asked = useRef(false);
  useLayoutEffect(() => {
    if (run.askCancel || asked.current) {
      document.getElementById(run.askCancel ? "cancel-no" : "cancel-button")?.focus();
    }
    asked.current = run.askCancel;
  }, [run.askCancel]);
  const title = {
    planning: "Getting ready…",
    writing: `Flashing ${run.image}`,
    ejecting: "Ejecting…",
    done: done ? outcome(run) : "",
  }[run.phase];
  return (
    <section id="run" class="card-wide" aria-labelledby="run-title">
      <h2 id="run-title" ref={heading} tabIndex={-1}>
        {title}
      </h2>
      {run.plan && <ProgressLine line={run.plan} label="Progress of checking the source" id="plan-progress" />}
      <ul id="flash-progress" aria-live="polite" aria-label="Drives being flashed">
        {run.drives.map((d) => (
          <li key={d.drive.path} data-path={d.drive.path} class={d.line.outcome ?? ""}>
            <span class="name">
              {d.node ? `${d.node}: ` : ""}
              {d.config ? "Config stick: " : ""}
              {describeDrive(d.drive)}
            </span>
            <ProgressLine line={d.line} label={`Progress of ${d.drive.path}`} />
            {d.report?.error && d.report.errorKind !== "cancelled" && (
              <details>
                <summary>Details</summary>
                {d.report.error}
              </details>
            )}
            {d.eject && <p class={`eject ${d.eject.ok ? "" : "bad"}`}>{d.eject.text}</p>}
          </li>
        ))}
      </ul>
      {run.result && (
        <div id="flash-result">
          <Digest id="result-image-sha" label="image SHA-256" hex={run.result.imageSHA256} />
          {run.result.archiveSHA256 !== run.result.imageSHA256 && (
            <Digest id="result-archive-sha" label="download SHA-256" hex={run.result.archiveSHA256} />
          )}
          {run.result.configStick && <Digest id="result-config-sha" label="config stick SHA-256" hex={run.result.configStick.imageSHA256} />}
          <SourceBadge source={run.result.digestSource} />
          {(run.result.warnings ?? []).map((w, i) => (
            <p key={i} id={`result-warning-${i}`} class="warning">
              {sentence(w)}
            </p>
          ))}
        </div>
      )}
      {done && run.record && (
        <p id="run-record" class={run.record.path ? "hint" : "warning"}>
          {run.record.path ? `Record of this run: ${run.record.path}` : `The record could not be written: ${run.record.error}`}
        </p>
      )}
      <ErrorText id="error-step-flash" text={s.errors.flash} />
      {run.phase === "planning" && (
        <button type="button" id="cancel-button" onClick={act.cancelJob}>
          Cancel
        </button>
      )}
      {run.phase === "writing" && !run.askCancel && (
        <button type="button" id="cancel-button" onClick={() => act.askCancel(null)}>
          Cancel
        </button>
      )}
      {run.askCancel && (
        <div class="ask" role="alertdialog" aria-labelledby="cancel-question">
          <p id="cancel-question">Stop flashing? The drives will be left blank, not bootable.</p>
          <button type="button" id="cancel-no" onClick={() => act.askCancel(false)}>
            Keep flashing
          </button>
          <button type="button" id="cancel-yes" class="danger" onClick={() => act.askCancel(true)}>
            Stop
          </button>
        </div>
      )}
      {done && (
        <div id="after-flash" class="buttons">
          <button type="button" id="flash-another" class="primary" onClick={act.flashAnother}>
            Flash another drive with this image
          </button>
          <button type="button" id="start-over" onClick={act.startOver}>
            Start over
          </button>
        </div>
      )}
    </section>
  );
}

/** The run's outcome in a few words: how many drives are verified, and how many are not. */
function outcome(run: Run): string {
  const n = run.drives.length;
  const verified = run.drives.filter((d) => d.report?.ok && d.report.verifiedSHA256).length;
  const written = run.drives.filter((d) => d.report?.ok && !d.report.verifiedSHA256).length;
  const drives = (k: number) => `${k} drive${k === 1 ? "" : "s"}`;
  if (run.drives.every((d) => d.line.text === "Cancelled")) return "Cancelled — the drives are blank, not bootable";
  if (verified === n) return `Done — ${drives(n)} verified`;
  if (verified + written === n) return `Done — ${drives(written)} written, not read back`;
  return `${drives(n - verified - written)} of ${n} failed`;
}
