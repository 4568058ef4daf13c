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
//! Or nodes that are labctl ImageBuild configs (`- build: talos/cp-1.yaml`, each naming its own
//! source: they must all name the same image, and the file then has no `source:`), or a folder of
//! them ([`from_folder`]). Each node's cidata image is built (and checked) as `labflash cidata`
//! builds one, from the node's own fields or its ImageBuild's `config`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fetch::digest::{self, Sha256Digest};
use crate::fetch::factory_signature::FactoryTrust;
use crate::flash::lab::Node;
use crate::flash::rules::Chosen;
use crate::sources::cidata::{self, Cidata, CidataRequest};
use crate::sources::talos_build;
use crate::sources::talos_factory::FactoryUrl;

/// A lab file as written.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabFile {
    /// The image; absent when the nodes are ImageBuild configs, which name it.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub allow_unverified: bool,
    pub nodes: Vec<NodeSpec>,
    /// The Image Factory the nodes' ImageBuild configs name: the image is its asset, whose
    /// signature is checked as `talos build` checks it.
    #[serde(skip)]
    pub factory: Option<FactoryTrust>,
}

/// A node: its own hostname and machine config, or a labctl ImageBuild config (`build`).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub user_data: PathBuf,
    #[serde(default)]
    pub build: Option<PathBuf>,
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
    /// The Image Factory whose asset the image is (the nodes are its ImageBuild configs).
    pub factory: Option<FactoryTrust>,
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
    let mut lab = lab;
    if lab.nodes.is_empty() {
        return Err(Error::BadInput(format!(
            "{} lists no nodes: a lab file needs at least one under `nodes:`",
            file.display()
        )));
    }
    let base = file.parent().unwrap_or(Path::new("."));
    lab.read_builds(base, file)?;
    Ok(lab)
}

/// A folder of labctl ImageBuild configs (every `.yaml`/`.yml` file with a top-level `source:`;
/// the Talos machine configs beside them are not nodes), one node each, in file-name order.
pub fn from_folder(dir: &Path) -> Result<LabFile> {
    let listing = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut builds: Vec<PathBuf> = Vec::new();
    for entry in listing {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if !yaml || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        if text.lines().any(|l| l.starts_with("source:")) {
            // By its name: `read_builds` resolves it against the folder.
            builds.push(PathBuf::from(path.file_name().expect("a file")));
        }
    }
    builds.sort();
    if builds.is_empty() {
        return Err(Error::BadInput(format!(
            "{} holds no labctl ImageBuild config (a YAML file with a top-level source:)",
            dir.display()
        )));
    }
    let mut lab = LabFile {
        source: None,
        sha256: None,
        allow_unverified: false,
        factory: None,
        nodes: builds
            .into_iter()
            .map(|build| NodeSpec {
                hostname: String::new(),
                user_data: PathBuf::new(),
                build: Some(build),
                network_config: None,
                instance_id: None,
                to: None,
                config_to: None,
            })
            .collect(),
    };
    lab.read_builds(dir, dir)?;
    Ok(lab)
}

impl LabFile {
    /// Reads the nodes' ImageBuild configs (relative to `base`): each node takes its config's
    /// hostname, and every config must name the same image, which becomes the lab's source.
    /// A node is one form or the other, never both, and the forms are not mixed.
    fn read_builds(&mut self, base: &Path, file: &Path) -> Result<()> {
        let bad = |why: String| Error::BadInput(format!("{}: {why}", file.display()));
        let built = self.nodes.iter().filter(|n| n.build.is_some()).count();
        if built == 0 {
            for n in &self.nodes {
                if n.hostname.is_empty() || n.user_data.as_os_str().is_empty() {
                    return Err(bad(format!(
                        "a node needs a hostname and userData (or build: an ImageBuild config){}",
                        if n.hostname.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", n.hostname)
                        }
                    )));
                }
            }
            if self.source.is_none() {
                return Err(bad("the lab names no image: give it `source:`".into()));
            }
            return self.refuse_shared_hostnames(file);
        }
        if built != self.nodes.len() || self.source.is_some() {
            return Err(bad(
                "its nodes are either ImageBuild configs (build:, which name the image) or hostname and userData beside a source:, not both".into(),
            ));
        }
        let mut first: Option<(String, String)> = None;
        for node in &mut self.nodes {
            let path = resolve(base, node.build.as_deref().expect("counted above"));
            if !node.hostname.is_empty() || !node.user_data.as_os_str().is_empty() {
                return Err(bad(format!(
                    "the node built from {} takes its hostname and userData from that config, not from the lab file",
                    path.display()
                )));
            }
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let build = talos_build::parse(&text)
                .map_err(|e| Error::BadInput(format!("{}: {e}", path.display())))?;
            if build.source.ca_cert.is_some() {
                return Err(Error::BadInput(format!(
                    "{}: a lab does not take source.caCert; give the CA with --ca-cert",
                    path.display()
                )));
            }
            let url = build.source_url()?.to_string();
            self.factory = Some(FactoryUrl::parse(&build.source.factory_url)?.trust(None));
            let name = path.display().to_string();
            match &first {
                None => first = Some((url.clone(), name)),
                Some((url0, name0)) if *url0 != url => {
                    return Err(Error::BadInput(format!(
                        "the configs name different images, and a lab writes one: {name0} names {url0}, {name} names {url}"
                    )))
                }
                Some(_) => {}
            }
            // Its files are relative to its own folder: made absolute here, so that nothing
            // resolves them against the lab file's folder again.
            let dir = std::path::absolute(path.parent().unwrap_or(base))
                .map_err(|e| Error::io(&path, e))?;
            node.hostname = build.config.meta_data.local_hostname.clone();
            node.instance_id = build.config.meta_data.instance_id.clone();
            node.user_data = dir.join(&build.config.user_data.path);
            node.network_config = build
                .config
                .network_config
                .as_ref()
                .map(|n| dir.join(&n.path));
        }
        self.source = first.map(|(url, _)| url);
        self.refuse_shared_hostnames(file)
    }

    /// Each node's config image is named for its hostname, and a node is known by it: two nodes
    /// with one hostname (a config copied and not renamed) would boot as one, or write one's
    /// config onto the other's stick.
    fn refuse_shared_hostnames(&self, file: &Path) -> Result<()> {
        for (i, a) in self.nodes.iter().enumerate() {
            if self.nodes[..i].iter().any(|b| b.hostname == a.hostname) {
                return Err(Error::BadInput(format!(
                    "{} names the node {} twice: each node needs a hostname of its own",
                    file.display(),
                    a.hostname
                )));
            }
        }
        Ok(())
    }

    /// Builds every node's cidata image into `out` and gives each node its drives: its own
    /// `to`/`configTo`, else the next of `drives` (the command line's, in node order). A node
    /// left without a boot drive is refused, naming it.
    pub fn build(&self, base: &Path, drives: &[PathBuf], out: &Path) -> Result<Lab> {
        let configs = self.configs(base, out)?;
        let mut given = drives.iter();
        let mut nodes = Vec::new();
        for (spec, config) in self.nodes.iter().zip(&configs) {
            // A node's own drive first (a file relative to the lab file, as its other paths);
            // only a node without one takes the next --to.
            let own = spec.to.as_deref().map(|p| resolve(base, p));
            let Some(to) = own.or_else(|| given.next().cloned()) else {
                return Err(Error::BadInput(format!(
                    "node {} has no drive: give it `to:` in the lab file or one more --to",
                    spec.hostname
                )));
            };
            nodes.push(Node {
                name: spec.hostname.clone(),
                to: Chosen::path(to),
                config: Some(config.path.clone()),
                config_to: spec
                    .config_to
                    .as_deref()
                    .map(|p| Chosen::path(resolve(base, p))),
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
            factory: self.factory.clone(),
            nodes,
            configs,
        })
    }

    /// The image: a URL as written, or a file resolved against the lab file's folder.
    pub fn source(&self, base: &Path) -> String {
        let source = self.source.clone().unwrap_or_default();
        if crate::fetch::is_url(&source) {
            source
        } else {
            resolve(base, Path::new(&source)).display().to_string()
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

    /// Nodes built from labctl ImageBuild configs (labctl's own minimal config: GilmanLab/platform
    /// tools/labctl, tests/fixtures/labctl) take their hostname from it; the two forms of node
    /// are not mixed.
    #[test]
    fn imagebuild_nodes_name_the_image_and_their_hostnames() {
        let dir = tempfile::tempdir().unwrap();
        let minimal = include_str!("../../../../../tests/fixtures/labctl/talos-minimal.yaml");
        std::fs::write(dir.path().join("cp.yaml"), minimal).unwrap();
        let file = dir.path().join("lab.yaml");
        let lab = parse("nodes:\n  - build: cp.yaml\n", &file).unwrap();
        assert_eq!(lab.nodes[0].hostname, "bootstrap-controlplane-1");
        assert!(lab.nodes[0].user_data.is_absolute());
        assert!(
            lab.source
                .as_deref()
                .unwrap()
                .ends_with("/v1.13.0/nocloud-amd64.raw.xz"),
            "{:?}",
            lab.source
        );
        // A config copied for a second node and not renamed: one hostname, refused.
        std::fs::write(dir.path().join("cp-copy.yaml"), minimal).unwrap();
        let twice = parse(
            "nodes:\n  - build: cp.yaml\n  - build: cp-copy.yaml\n",
            &file,
        );
        let said = twice.unwrap_err().to_string();
        assert!(
            said.contains("names the node bootstrap-controlplane-1 twice"),
            "{said}"
        );
        let folder = from_folder(dir.path()).unwrap_err().to_string();
        assert!(folder.contains("twice"), "{folder}");
        for (text, said) in [
            ("source: x.raw\nnodes:\n  - build: cp.yaml\n", "not both"),
            (
                "nodes:\n  - build: cp.yaml\n    hostname: x\n",
                "takes its hostname",
            ),
            ("nodes:\n  - hostname: x\n", "needs a hostname and userData"),
        ] {
            let err = parse(text, &file).unwrap_err().to_string();
            assert!(err.contains(said), "{text}: {err}");
        }
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
