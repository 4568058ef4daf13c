// The window: tabs (Flash, Verify, Settings). Flash is three tiles (Image, Drives, Flash) with
// the digest card under them once an image is checked; while flashing and after, the run's page.
import appIcon from "../../../icons/icon.svg";
import * as act from "../actions";
import type { State, Tab } from "../store";
import { ConfirmDialog } from "./ConfirmDialog";
import { DigestCard } from "./DigestCard";
import { DrivesTile } from "./DrivesTile";
import { ErrorText } from "./common";
import { FlashTile } from "./FlashTile";
import { ImageTile } from "./ImageTile";
import { LabCard } from "./LabCard";
import { RunPage } from "./RunPage";
import { SettingsTab } from "./SettingsTab";
import { SourceDialog } from "./SourceDialog";
import { VerifyTab } from "./VerifyTab";

const TABS: [Tab, string][] = [
  ["flash", "Flash"],
  ["verify", "Verify"],
  ["settings", "Settings"],
];

export function App({ s }: { s: State }) {
  return (
    <>
      <header>
        <h1>
          <img src={appIcon} alt="" />
          labflash
        </h1>
        <Tabs s={s} />
      </header>
      <ErrorText id="message" text={s.errors.window} />
      <main>
        {s.tab === "flash" && (
          <section id="flash" role="tabpanel" aria-labelledby="tab-flash">
            {s.run ? (
              <RunPage s={s} run={s.run} />
            ) : (
              <>
                <div class="tiles">
                  <ImageTile s={s} />
                  <DrivesTile s={s} />
                  <FlashTile s={s} />
                </div>
                {s.prepared && <DigestCard s={s} />}
                {s.form.kind === "lab" && s.lab && <LabCard s={s} />}
              </>
            )}
          </section>
        )}
        {s.tab === "verify" && <VerifyTab s={s} />}
        {s.tab === "settings" && <SettingsTab s={s} />}
      </main>
      <SourceDialog s={s} />
      <ConfirmDialog s={s} />
    </>
  );
}

/** One Tab stop; the arrow keys move between tabs (WAI-ARIA tabs). */
function Tabs({ s }: { s: State }) {
  const move = (from: Tab, step: number) => {
    const i = TABS.findIndex(([t]) => t === from);
    const next = TABS[(i + step + TABS.length) % TABS.length][0];
    act.selectTab(next);
    document.getElementById(`tab-${next}`)?.focus();
  };
  return (
    <nav role="tablist" aria-label="Modes">
      {TABS.map(([tab, label]) => (
        <button
          key={tab}
          role="tab"
          id={`tab-${tab}`}
          aria-selected={s.tab === tab ? "true" : "false"}
          aria-controls={tab}
          tabIndex={s.tab === tab ? 0 : -1}
          onClick={() => act.selectTab(tab)}
          onKeyDown={(e) => {
            const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
            if (step === undefined) return;
            e.preventDefault();
            move(tab, step);
          }}
        >
          {label}
        </button>
      ))}
    </nav>
  );
}
