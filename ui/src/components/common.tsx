// Small pieces every view uses: a progress line, a digest to read and copy, an error in place.
import type { ComponentChildren } from "preact";
import { useLayoutEffect, useRef } from "preact/hooks";
import { describeSource } from "../logic";
import type { DigestSource } from "../api";
import type { Line } from "../store";

/** A progress line: its text and bar; once ended, marked good or bad and its bar settled. */
export function ProgressLine({ line, label, id, bar = true }: { line: Line; label: string; id?: string; bar?: boolean }) {
  return (
    <div class={`progress ${line.outcome ?? ""}`} id={id}>
      <span class="progress-text">{line.text}</span>
      {bar && line.outcome !== "bad" && (
        <progress max={100} value={line.percent ?? undefined} aria-label={label} />
      )}
    </div>
  );
}

/** A digest in groups of eight, the first and last bold (what people compare), with Copy. The
 * groups are spacing only: the text is the digest as one word, so selecting it copies it whole. */
export function Digest({ id, label, hex }: { id: string; label: string; hex: string }) {
  const groups = hex.match(/.{1,8}/g) ?? [];
  return (
    <div class="digest-row">
      <span class="digest-label" id={`${id}-label`}>
        {label[0].toUpperCase() + label.slice(1)}
      </span>
      <code id={id} class="digest" aria-labelledby={`${id}-label`}>
        {groups.map((g, i) => (i === 0 || i === groups.length - 1 ? <b key={i}>{g}</b> : <span key={i}>{g}</span>))}
      </code>
      <button type="button" class="small" aria-label={`Copy the ${label}`} onClick={() => void navigator.clipboard?.writeText(hex)}>
        Copy
      </button>
    </div>
  );
}

/** What vouches for the download, as a badge: green when the publisher does, amber when nothing. */
export function SourceBadge({ source, signedBy, id }: { source: DigestSource; signedBy?: string | null; id?: string }) {
  const { text, warn } = describeSource(source, signedBy);
  return (
    <p id={id} class={`badge ${warn ? "warn" : "good"}`}>
      {warn ? "⚠ No checksum from its publisher: compare its digest with one you trust" : `✓ The download matches ${text}`}
    </p>
  );
}

/** An error shown where its action is; an alert, so it is read out when it appears. */
export function ErrorText({ id, text }: { id: string; text?: string }) {
  return (
    <p id={id} class="step-error" role="alert">
      {text ?? ""}
    </p>
  );
}

/** A step of the flash: its number, picture and name over what it holds. */
export function Tile(props: { id: string; step: number; icon: ComponentChildren; title: string; children: ComponentChildren; busy?: boolean }) {
  const { id, step, icon, title, children, busy } = props;
  return (
    <section id={id} class="tile" aria-labelledby={`${id}-title`} aria-busy={busy ? "true" : undefined}>
      <h2 id={`${id}-title`} class="step">
        <span class="step-number" aria-hidden="true">
          {step}
        </span>
        {icon}
        <span class="sr-only">Step {step}: </span>
        {title}
      </h2>
      {children}
    </section>
  );
}

/** A modal dialog shown while `open`; Escape is its `onCancel`. Opened as the render lands
 * (a layout effect), so the next key or click already reaches it. */
export function Modal(props: { id: string; open: boolean; labelledBy: string; onCancel: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useLayoutEffect(() => {
    const d = ref.current!;
    if (props.open && !d.open) d.showModal();
    if (!props.open && d.open) d.close();
  }, [props.open]);
  return (
    <dialog
      ref={ref}
      id={props.id}
      aria-labelledby={props.labelledBy}
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      {props.open && props.children}
    </dialog>
  );
}

/** A labelled text field; `invalid` marks it for assistive technology. */
export function TextField(props: {
  id: string;
  label: string;
  value: string;
  onValue: (v: string) => void;
  invalid?: boolean;
  placeholder?: string;
  type?: string;
  list?: string;
  inputMode?: "numeric" | "text";
}) {
  const on = (e: Event) => props.onValue((e.currentTarget as HTMLInputElement).value);
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        type={props.type ?? "text"}
        value={props.value}
        placeholder={props.placeholder}
        list={props.list}
        inputMode={props.inputMode}
        spellcheck={false}
        aria-invalid={props.invalid ? "true" : undefined}
        onInput={on}
        onChange={on}
      />
    </div>
  );
}

export function Check(props: { id: string; label: string; checked: boolean; onCheck: (on: boolean) => void; disabled?: boolean }) {
  return (
    <div class="check">
      <input
        id={props.id}
        type="checkbox"
        checked={props.checked}
        disabled={props.disabled}
        onChange={(e) => props.onCheck(e.currentTarget.checked)}
      />
      <label for={props.id}>{props.label}</label>
    </div>
  );
}

export function Select(props: { id: string; label: string; value: string; options: string[]; onValue: (v: string) => void }) {
  return (
    <div class="field inline">
      <label for={props.id}>{props.label}</label>
      <select id={props.id} value={props.value} onChange={(e) => props.onValue(e.currentTarget.value)}>
        {props.options.map((o) => (
          <option key={o}>{o}</option>
        ))}
      </select>
    </div>
  );
}
