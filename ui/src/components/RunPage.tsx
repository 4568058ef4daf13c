// The flash as it runs and as it ended: the image by name (and mark, for Talos and IncusOS), one
// card per drive (its picture, a large percentage, stage, rate and time left, a Cancel of its
// own; then what the drive holds now and what ejecting did), the run's Cancel that asks first,
// the digests read back and what they are of, and the next step that makes sense.
import { useLayoutEffect, useRef } from "preact/hooks";
import * as act from "../actions";
import { driveName, formatBytes, heldText, nextSteps, runOutcome, sentence } from "../logic";
import type { DriveRun, Run, State } from "../store";
import { Digest, ErrorText, ProgressLine, SourceBadge } from "./common";
import { DriveIcon, ImageIcon, SourceMark } from "./icons";

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
    planning: s.confirm ? "Nothing is written until you confirm" : "Checking the image and the drives…",
    writing: `Flashing ${run.image}`,
    ejecting: "Ejecting…",
    done: done ? runOutcome(run) : "",
  }[run.phase];
  const kind = s.form.kind;
  const several = run.drives.length > 1;
  return (
    <section id="run" class="card-wide" aria-labelledby="run-title">
      <div class="run-head">
        {kind === "talos" || kind === "incus" ? <SourceMark kind={kind} /> : <ImageIcon class="mark" />}
        <h2 id="run-title" ref={heading} tabIndex={-1}>
          {title}
        </h2>
      </div>
      {run.plan && <ProgressLine line={run.plan} label="Progress of checking the source" id="plan-progress" />}
      <ul id="flash-progress" aria-live="polite" aria-label="Drives being flashed">
        {run.drives.map((d) => (
          <DriveCard key={d.drive.path} d={d} run={run} cancellable={several && run.phase === "writing" && !d.report} />
        ))}
      </ul>
      {run.result && (
        <div id="flash-result">
          <ResultDigests run={run} local={kind === "file"} />
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
          {several ? "Cancel all" : "Cancel"}
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
      {done && <NextSteps run={run} lab={kind === "lab"} />}
    </section>
  );
}

/** One drive: what it is, how far, and once ended what it holds now. */
function DriveCard({ d, run, cancellable }: { d: DriveRun; run: Run; cancellable: boolean }) {
  const { line } = d;
  const big = line.outcome === "good" ? "✓" : line.outcome === "bad" ? "✗" : line.percent === null ? "" : `${Math.floor(line.percent)} %`;
  const held = run.phase === "done" || d.report ? heldText(d, run.failure) : null;
  return (
    <li data-path={d.drive.path} class={`drive-run ${line.outcome ?? ""}`}>
      <div class="drive-head">
        <DriveIcon bus={d.drive.bus} class="drive-icon" />
        <span class="name">
          {d.node ? `${d.node}: ` : ""}
          {d.config ? "Config stick: " : ""}
          {driveName(d.drive)}
          <span class="meta">
            {formatBytes(d.drive.size)} · {d.drive.bus} · {d.drive.path}
          </span>
        </span>
        <span class="percent" aria-hidden="true">
          {big}
        </span>
      </div>
      {/* Before the answer to the confirmation, no bar: nothing is being written. */}
      <ProgressLine line={line} label={`Progress of ${d.drive.path}`} bar={run.phase !== "planning"} />
      {held && <p class={`held ${d.report?.ok ? "" : "bad"}`}>{held}</p>}
      {d.report?.error && d.report.errorKind !== "cancelled" && (
        <details>
          <summary>Details</summary>
          {d.report.error}
        </details>
      )}
      {d.eject && <p class={`eject ${d.eject.ok ? "" : "bad"}`}>{d.eject.text}</p>}
      {cancellable && (
        <button type="button" class="small cancel-drive" disabled={d.cancelling} onClick={() => act.cancelDrive(d.drive.path)}>
          {d.cancelling ? "Stopping…" : "Cancel this drive"}
        </button>
      )}
    </li>
  );
}

/** The digests read back, each named by what it is of. */
function ResultDigests({ run, local }: { run: Run; local: boolean }) {
  const r = run.result!;
  return (
    <>
      {r.stickSHA256 ? (
        <>
          <Digest id="result-stick-sha" label="stick SHA-256 (read back)" hex={r.stickSHA256} />
          <p class="hint" id="result-stick-what">
            Each stick holds the boot image followed by a partition named cidata with your config: the stick's digest is of that whole, as read back.
          </p>
          <Digest id="result-image-sha" label="boot image SHA-256" hex={r.imageSHA256} />
          {r.configSHA256 && <Digest id="result-config-partition-sha" label="config partition SHA-256" hex={r.configSHA256} />}
        </>
      ) : (
        <Digest id="result-image-sha" label="image SHA-256 (read back)" hex={r.imageSHA256} />
      )}
      {r.archiveSHA256 !== r.imageSHA256 && <Digest id="result-archive-sha" label={local ? "file SHA-256 (compressed)" : "download SHA-256"} hex={r.archiveSHA256} />}
      {r.configStick && <Digest id="result-config-sha" label="config stick SHA-256" hex={r.configStick.imageSHA256} />}
    </>
  );
}

/** What to do next: another drive when every drive took the image, Retry when a drive failed
 * (it may pass again), another image when the image itself was refused. */
function NextSteps({ run, lab }: { run: Run; lab: boolean }) {
  const next = nextSteps(run, lab);
  return (
    <div id="after-flash" class="buttons">
      {next.retry > 0 && (
        <button type="button" id="retry" class="primary" onClick={act.retryFailed}>
          Retry {next.retry === 1 ? "the drive" : `the ${next.retry} drives`} that did not finish
        </button>
      )}
      {next.another && (
        <button type="button" id="flash-another" class={next.retry ? "" : "primary"} onClick={act.flashAnother}>
          Flash another drive with this image
        </button>
      )}
      {next.otherImage && (
        <button type="button" id="other-image" class="primary" onClick={act.startOver}>
          Choose another image
        </button>
      )}
      {!next.otherImage && (
        <button type="button" id="start-over" onClick={act.startOver}>
          Start over
        </button>
      )}
    </div>
  );
}
