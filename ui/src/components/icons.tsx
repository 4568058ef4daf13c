// The window's pictures, drawn here as SVG (no image files to load, and the CSP allows no inline
// styles: colours come from `currentColor`). Decorative: hidden from screen readers, whose text
// says the same.
import type { Bus } from "../api";

type Props = { class?: string };

const svg = (body: preact.ComponentChildren, { class: cls }: Props, box = "0 0 24 24") => (
  <svg class={`icon ${cls ?? ""}`} viewBox={box} aria-hidden="true" focusable="false">
    {body}
  </svg>
);

/** An image: a disc. */
export const ImageIcon = (p: Props) =>
  svg(
    <>
      <circle cx="12" cy="12" r="9" fill="none" stroke="currentColor" stroke-width="2" />
      <circle cx="12" cy="12" r="2.5" fill="currentColor" />
    </>,
    p,
  );

/** A USB stick, plug up. */
export const UsbIcon = (p: Props) =>
  svg(
    <>
      <rect x="8.5" y="2" width="7" height="6" rx="1" fill="none" stroke="currentColor" stroke-width="1.6" />
      <rect x="10.2" y="3.6" width="1.2" height="1.6" fill="currentColor" />
      <rect x="12.6" y="3.6" width="1.2" height="1.6" fill="currentColor" />
      <rect x="6.5" y="8" width="11" height="14" rx="2.5" fill="currentColor" />
    </>,
    p,
  );

/** An SD card: a card with a cut corner and contacts. */
export const SdIcon = (p: Props) =>
  svg(
    <>
      <path d="M8 2h10a2 2 0 0 1 2 2v16a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V6z" fill="currentColor" />
      <path class="contacts" d="M9 4v4M12 4v4M15 4v4" stroke-width="1.4" />
    </>,
    p,
  );

/** A disk, or a file standing in for one (loop, virtual). */
export const DiskIcon = (p: Props) =>
  svg(
    <>
      <rect x="3" y="5" width="18" height="14" rx="2" fill="none" stroke="currentColor" stroke-width="2" />
      <circle cx="16.5" cy="15" r="1.5" fill="currentColor" />
      <path d="M6 9h9" stroke="currentColor" stroke-width="2" />
    </>,
    p,
  );

/** Flashing: a lightning bolt. */
export const FlashIcon = (p: Props) => svg(<path d="M13 2 4 14h6l-1 8 9-12h-6z" fill="currentColor" />, p);

/** What a drive looks like, from how it is attached. */
export function DriveIcon({ bus, ...p }: Props & { bus: Bus }) {
  if (bus === "usb") return <UsbIcon {...p} />;
  if (bus === "mmc") return <SdIcon {...p} />;
  return <DiskIcon {...p} />;
}

/** The source's mark: a letter in a disc of its colour (the projects' own logos are their
 * trademarks, not ours to ship). */
export function SourceMark({ kind }: { kind: "talos" | "incus" }) {
  const [letter, cls] = kind === "talos" ? ["T", "mark-talos"] : ["I", "mark-incus"];
  return svg(
    <>
      <circle cx="12" cy="12" r="11" fill="currentColor" />
      <text x="12" y="16.5" text-anchor="middle" font-size="13" font-weight="700" font-family="sans-serif" fill="#fff">
        {letter}
      </text>
    </>,
    { class: `mark ${cls}` },
  );
}
