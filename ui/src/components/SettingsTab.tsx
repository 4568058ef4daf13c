// Settings: how flashing behaves (check first, read back, eject, the size limit), the cache, the
// lab's CA certificate, the root IncusOS indexes are checked against, where flash records are kept.
import * as act from "../actions";
import { formatBytes } from "../logic";
import type { State } from "../store";
import { Check, ErrorText, TextField } from "./common";

export function SettingsTab({ s }: { s: State }) {
  const t = s.settings;
  return (
    <section id="settings" role="tabpanel" aria-labelledby="tab-settings" class="card-wide">
      <h2>Flashing</h2>
      <Check id="check-first" label="Check the image's digest before writing (download and decompress it first, then compare its SHA-256)" checked={t.checkFirst} onCheck={(on) => act.setSetting("checkFirst", on)} />
      <Check id="read-back" label="Read every drive back to prove it (recommended)" checked={t.readBack} onCheck={(on) => act.setSetting("readBack", on)} />
      <Check id="eject-after" label="Eject drives when done" checked={t.eject} onCheck={(on) => act.setSetting("eject", on)} />
      <TextField id="max-image-gib" label="Largest image accepted, in GiB" inputMode="numeric" value={t.maxGiB} onValue={act.setMaxGiB} />
      <h2>Downloads</h2>
      <dl>
        <dt>Cache</dt>
        <dd id="cache-path">
          {t.cachePath} {t.cacheBytes !== null && `(${formatBytes(t.cacheBytes)})`}
        </dd>
        <dt>Extra CA certificate</dt>
        <dd id="ca-cert">{t.caCert ?? "none: servers are trusted as this computer trusts them"}</dd>
      </dl>
      <div class="buttons">
        <button type="button" id="clear-cache" onClick={() => void act.clearCache()}>
          Clear the cache
        </button>
        <button type="button" id="choose-ca-cert" onClick={() => void act.chooseCaCert()}>
          Trust a CA certificate file…
        </button>
        {t.caCert !== null && (
          <button type="button" id="clear-ca-cert" onClick={() => void act.setCaCert(null)}>
            Trust only the system's certificates
          </button>
        )}
      </div>
      <ErrorText id="ca-cert-error" text={t.caError} />
      <h2>IncusOS</h2>
      <dl>
        <dt>Index signed under</dt>
        <dd id="incus-root">{t.incusRoot ?? "IncusOS's own root (Incus OS - Root E1, Linux Containers)"}</dd>
      </dl>
      <div class="buttons">
        <button type="button" id="choose-incus-root" onClick={() => void act.chooseIncusRoot()}>
          Use a mirror's root certificate…
        </button>
        {t.incusRoot !== null && (
          <button type="button" id="clear-incus-root" onClick={() => void act.setIncusRoot(null)}>
            Use IncusOS's own root
          </button>
        )}
      </div>
      <ErrorText id="incus-root-error" text={t.incusRootError} />
      <h2>Records</h2>
      <dl>
        <dt>Flash records</dt>
        <dd id="records-dir">{t.recordsDir ?? "none kept (a lab's record goes beside its lab file)"}</dd>
      </dl>
      <div class="buttons">
        <button type="button" id="choose-records-dir" onClick={() => void act.chooseRecordsDir()}>
          Keep a record of every flash in…
        </button>
        {t.recordsDir !== null && (
          <button type="button" id="clear-records-dir" onClick={() => void act.setRecordsDir(null)}>
            Keep no records
          </button>
        )}
      </div>
      <ErrorText id="records-error" text={t.recordsError} />
      <ErrorText id="error-settings" text={s.errors.settings} />
      <p id="version">labflash {t.version}</p>
    </section>
  );
}
