import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

// The palette in style.css, light and dark, held to WCAG 2.1 AA (text 4.5:1) for the pairs the
// window draws text with. The end-to-end test looks at the light window; this checks both schemes.
// vitest runs in ui/ (npm test).
const css = readFileSync("src/style.css", "utf8");

/** The custom properties of the first `:root { … }` after `from` in the stylesheet. */
function palette(from: number): Record<string, string> {
  const start = css.indexOf(":root {", from);
  const block = css.slice(start, css.indexOf("}", start));
  return Object.fromEntries([...block.matchAll(/--([\w-]+):\s*(#[0-9a-fA-F]{3,6})\s*;/g)].map((m) => [m[1], m[2]]));
}

function luminance(hex: string): number {
  const h = hex.length === 4 ? [...hex.slice(1)].map((c) => c + c).join("") : hex.slice(1);
  const [r, g, b] = [0, 2, 4].map((i) => {
    const c = parseInt(h.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

const light = palette(0);
const dark = { ...light, ...palette(css.indexOf("@media (prefers-color-scheme: dark)")) };

// [text, background]: buttons, the warning banner, and the coloured words on a tile.
const PAIRS: [string, string][] = [
  ["accent-text", "accent"],
  ["bad-text", "bad"],
  ["warn-text", "warn-bg"],
  ["bad", "tile"],
  ["good", "tile"],
  ["muted", "tile"],
];

describe("colour contrast", () => {
  for (const [scheme, colours] of [
    ["light", light],
    ["dark", dark],
  ] as const) {
    for (const [text, background] of PAIRS) {
      it(`${scheme}: --${text} on --${background} reads at 4.5:1 or more`, () => {
        expect(colours[text], `--${text}`).toBeDefined();
        expect(colours[background], `--${background}`).toBeDefined();
        expect(contrast(colours[text], colours[background])).toBeGreaterThanOrEqual(4.5);
      });
    }
  }
});
