// A lab file's nodes: each node's hostname, its config image's digest, and the drive it takes
// (any listed drive that can take an image; plugging a stick in fills the next row without one).
// Where the engine says the image's release does not read cidata on its boot stick, each row
// also takes a config stick.
import * as act from "../actions";
import type { DriveRow } from "../api";
import { driveName, formatBytes, sentence, shortDigest } from "../logic";
import type { State } from "../store";

export function LabCard({ s }: { s: State }) {
  const lab = s.lab!;
  const usable = s.drives.filter((d) => !d.unsuitable);
  const two = lab.configOwnStick !== null;
  return (
    <section id="lab-card" class="card-wide" aria-labelledby="lab-title">
      <h2 id="lab-title">
        {lab.nodes.length} nodes · {lab.source.split("/").pop()}
      </h2>
      {two && (
        <p id="lab-two-sticks" class="warning" title={sentence(lab.configOwnStick!)}>
          This release does not read a node's config on its boot stick: each node takes a config stick too.
        </p>
      )}
      <table id="lab-nodes">
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Config SHA-256</th>
            <th scope="col">Drive</th>
            {two && <th scope="col">Config stick</th>}
          </tr>
        </thead>
        <tbody>
          {lab.nodes.map((node, i) => (
            <tr key={node.hostname} id={`lab-node-${i}`}>
              <th scope="row">{node.hostname}</th>
              <td class="digest" title={node.config.sha256}>
                {shortDigest(node.config.sha256)}
              </td>
              <td>
                <DrivePick id={`lab-drive-${i}`} label={`Drive for ${node.hostname}`} value={s.labDrives[i]} drives={usable} pick={(p) => act.setLabDrive(i, p)} />
              </td>
              {two && (
                <td>
                  <DrivePick id={`lab-config-drive-${i}`} label={`Config stick for ${node.hostname}`} value={s.labConfigDrives[i]} drives={usable} pick={(p) => act.setLabDrive(i, p, true)} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function DrivePick(p: { id: string; label: string; value: string | null; drives: DriveRow[]; pick: (path: string | null) => void }) {
  return (
    <select id={p.id} aria-label={p.label} value={p.value ?? ""} onChange={(e) => p.pick(e.currentTarget.value || null)}>
      <option value="">Choose a drive…</option>
      {p.drives.map((d) => (
        // The path first: it is what tells two identical sticks apart, and a narrow cell cuts
        // the end.
        <option key={d.path} value={d.path}>
          {d.path} — {driveName(d)}, {formatBytes(d.size)}
        </option>
      ))}
    </select>
  );
}
