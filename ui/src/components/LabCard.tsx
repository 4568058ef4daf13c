// A lab file's nodes: each node's hostname, its config image's digest, and the drive it takes
// (any listed drive that can take an image; plugging a stick in fills the next row without one).
import * as act from "../actions";
import { driveName, formatBytes, shortDigest } from "../logic";
import type { State } from "../store";

export function LabCard({ s }: { s: State }) {
  const lab = s.lab!;
  const usable = s.drives.filter((d) => !d.unsuitable);
  return (
    <section id="lab-card" class="card-wide" aria-labelledby="lab-title">
      <h2 id="lab-title">
        {lab.nodes.length} nodes · {lab.source.split("/").pop()}
      </h2>
      <table id="lab-nodes">
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Config SHA-256</th>
            <th scope="col">Drive</th>
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
                <select
                  id={`lab-drive-${i}`}
                  aria-label={`Drive for ${node.hostname}`}
                  value={s.labDrives[i] ?? ""}
                  onChange={(e) => act.setLabDrive(i, e.currentTarget.value || null)}
                >
                  <option value="">Choose a drive…</option>
                  {usable.map((d) => (
                    <option key={d.path} value={d.path}>
                      {driveName(d)} — {formatBytes(d.size)} — {d.path}
                    </option>
                  ))}
                </select>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
