//! A lab file: one boot image and the nodes that boot from it, each with its own Talos machine
//! config, hostname and network config, and its drives. labflash's own format (labctl builds one
//! node per run and has none):
//!
//! ```yaml
//! source: nocloud-amd64.raw.xz    # a file (relative to the lab file) or an http(s) URL
//! sha256: 1f2e…                    # optional: what vouches for it (else the publisher's .sha256)
//! nodes:
//!   - hostname: cp-1
//!     userData: controlplane.yaml  # a Talos machine config
//!     networkConfig: cp-1-net.yaml # optional (network-config v1 or v2)
//!     to: /dev/sdb                 # its boot stick (or given on the command line, in order)
//!     configTo: /dev/sdc           # optional: its config on a stick of its own
//! ```
//!
//! Each node's cidata image is built (and checked) as `labflash cidata` builds one.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fetch::digest::{self, Sha256Digest};
use crate::flash::lab::Node;
use crate::flash::rules::Chosen;
use crate::sources::cidata::{self, Cidata, CidataRequest};

/// A lab file as written.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabFile {
    pub source: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub allow_unverified: bool,
    pub nodes: Vec<NodeSpec>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    pub hostname: String,
    pub user_data: PathBuf,
    #[serde(default)]
    pub network_config: Option<PathBuf>,
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub to: Option<PathBuf>,
    #[serde(default)]
    pub config_to: Option<PathBuf>,
}

/// A lab ready to plan: its image, who vouches for it, and its nodes with their built configs.
#[derive(Debug)]
pub struct Lab {
    /// A URL, or the image file's path resolved against the lab file's folder.
    pub source: String,
    pub sha256: Option<Sha256Digest>,
    pub allow_unverified: bool,
    pub nodes: Vec<Node>,
    /// Each node's config image, in the nodes' order.
    pub configs: Vec<Cidata>,
}

/// Reads a lab file; every error names the file and, where it can, the node and field.
pub fn parse(text: &str, file: &Path) -> Result<LabFile> {
    let lab: LabFile = serde_saphyr::from_str(text).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().next().unwrap_or(&message).to_string();
        Error::BadInput(format!(
            "{} is not a valid lab file: {first}",
            file.display()
        ))
    })?;
    if lab.nodes.is_empty() {
        return Err(Error::BadInput(format!(
            "{} lists no nodes: a lab file needs at least one under `nodes:`",
            file.display()
        )));
    }
    for (i, a) in lab.nodes.iter().enumerate() {
        if lab.nodes[..i].iter().any(|b| b.hostname == a.hostname) {
            return Err(Error::BadInput(format!(
                "{} names the node {} twice: each node needs a hostname of its own",
                file.display(),
                a.hostname
            )));
        }
    }
    Ok(lab)
}

impl LabFile {
    /// Builds every node's cidata image into `out` and gives each node its drives: its own
    /// `to`/`configTo`, else the next of `drives` (the command line's, in node order). A node
    /// left without a boot drive is refused, naming it.
    pub fn build(&self, base: &Path, drives: &[PathBuf], out: &Path) -> Result<Lab> {
        let configs = self.configs(base, out)?;
        let mut given = drives.iter();
        let mut nodes = Vec::new();
        for (spec, config) in self.nodes.iter().zip(&configs) {
            // A node's own drive first; only a node without one takes the next --to.
            let Some(to) = spec.to.as_ref().or_else(|| given.next()) else {
                return Err(Error::BadInput(format!(
                    "node {} has no drive: give it `to:` in the lab file or one more --to",
                    spec.hostname
                )));
            };
            nodes.push(Node {
                name: spec.hostname.clone(),
                to: Chosen::path(to.clone()),
                config: Some(config.path.clone()),
                config_to: spec.config_to.clone().map(Chosen::path),
            });
        }
        if given.next().is_some() {
            return Err(Error::BadInput(format!(
                "{} --to given for {} nodes without a drive of their own",
                drives.len(),
                self.nodes.iter().filter(|n| n.to.is_none()).count()
            )));
        }
        Ok(Lab {
            source: self.source(base),
            sha256: self.sha256()?,
            allow_unverified: self.allow_unverified,
            nodes,
            configs,
        })
    }

    /// The image: a URL as written, or a file resolved against the lab file's folder.
    pub fn source(&self, base: &Path) -> String {
        if crate::fetch::is_url(&self.source) {
            self.source.clone()
        } else {
            resolve(base, Path::new(&self.source)).display().to_string()
        }
    }

    pub fn sha256(&self) -> Result<Option<Sha256Digest>> {
        self.sha256.as_deref().map(digest::parse_typed).transpose()
    }

    /// Builds every node's cidata image into `out` (checked as `labflash cidata` checks it), in
    /// the nodes' order; an error names the node.
    pub fn configs(&self, base: &Path, out: &Path) -> Result<Vec<Cidata>> {
        self.nodes
            .iter()
            .map(|spec| {
                cidata::build(&CidataRequest {
                    user_data: resolve(base, &spec.user_data),
                    hostname: spec.hostname.clone(),
                    instance_id: spec.instance_id.clone(),
                    network_config: spec.network_config.as_deref().map(|p| resolve(base, p)),
                    output: out.join(format!("{}-cidata.img", spec.hostname)),
                })
                .map_err(|e| Error::BadInput(format!("node {}: {e}", spec.hostname)))
            })
            .collect()
    }
}

/// A path of the lab file, relative to its folder unless absolute.
fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_file_names_its_mistakes() {
        let file = Path::new("lab.yaml");
        let ok = "source: talos.raw.xz\nnodes:\n  - hostname: cp-1\n    userData: cp.yaml\n";
        assert_eq!(parse(ok, file).unwrap().nodes[0].hostname, "cp-1");
        let typo = "source: talos.raw.xz\nnodes:\n  - hostname: cp-1\n    userdata: cp.yaml\n";
        let said = parse(typo, file).unwrap_err().to_string();
        assert!(
            said.starts_with("lab.yaml is not a valid lab file") && said.contains("userdata"),
            "{said}"
        );
        let none = parse("source: x.raw\nnodes: []\n", file).unwrap_err();
        assert!(none.to_string().contains("lists no nodes"), "{none}");
        let twice = format!("{ok}  - hostname: cp-1\n    userData: cp.yaml\n");
        let said = parse(&twice, file).unwrap_err().to_string();
        assert!(said.contains("names the node cp-1 twice"), "{said}");
    }

    #[test]
    fn nodes_take_their_own_drives_then_the_command_line_s_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // A real Talos worker config: siderolabs/talos
        // pkg/machinery/config/configloader/testdata/worker.test (tests/fixtures/talos).
        let worker = include_str!("../../../../../tests/fixtures/talos/configloader-worker.yaml");
        std::fs::write(dir.path().join("worker.yaml"), worker).unwrap();
        let text = "source: https://example.test/talos.raw.xz\nnodes:\n  - hostname: w-1\n    userData: worker.yaml\n    to: /dev/sdz\n  - hostname: w-2\n    userData: worker.yaml\n  - hostname: w-3\n    userData: worker.yaml\n";
        let lab = parse(text, Path::new("lab.yaml")).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let drives = [PathBuf::from("/dev/sdx"), PathBuf::from("/dev/sdy")];
        let built = lab.build(dir.path(), &drives, &out).unwrap();
        let to: Vec<_> = built.nodes.iter().map(|n| n.to.path.clone()).collect();
        assert_eq!(to, ["/dev/sdz", "/dev/sdx", "/dev/sdy"].map(PathBuf::from));
        assert_eq!(built.configs.len(), 3);
        assert_ne!(
            built.configs[0].sha256, built.configs[1].sha256,
            "own hostnames"
        );
        let short = lab.build(dir.path(), &drives[..1], &out).unwrap_err();
        assert!(
            short.to_string().contains("node w-3 has no drive"),
            "{short}"
        );
    }
}
