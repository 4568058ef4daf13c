//! A plan in the few facts a person confirms before erasing a drive: which image, how big, who
//! vouches for it, and what else goes on the stick. `Plan::describe` keeps the full lines (every
//! digest, the image kind) for those who ask for details.

use crate::fetch::digest::Sha256Digest;
use crate::fetch::DigestSource;

use super::lab::LabPlan;
use super::{Plan, Planned};

/// What a plan writes, for a confirmation in plain words.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The image's name: the last part of its URL or path.
    pub name: String,
    /// Its size in bytes, when known before writing.
    pub size: Option<u64>,
    /// `false`: `size` is what the archive records as a lower bound.
    pub size_exact: bool,
    /// Where the digest that vouches for it came from (`unverified`: nothing does).
    pub digest_source: DigestSource,
    /// Who signed that digest, when it was signed.
    pub signed_by: Option<String>,
    /// One stick: the config laid beside the boot image as its `cidata` partition.
    #[serde(rename = "configPartitionSHA256")]
    pub config_partition_sha256: Option<Sha256Digest>,
    /// Two sticks: the drives the config image goes onto, whole.
    pub config_sticks: Vec<String>,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let (name, size, size_exact, digest_source, partition) = match &self.source {
            Planned::Stream(opened) => (
                opened.source.as_str(),
                opened.image_size.map(|s| s.bytes),
                opened.image_size.is_some_and(|s| s.exact),
                opened.digest_source,
                None,
            ),
            Planned::Prepared(p) => (
                p.prepared.origin.as_str(),
                Some(p.writing.image.size),
                true,
                p.prepared.digest_source,
                p.writing
                    .layouts
                    .first()
                    .and_then(Option::as_ref)
                    .map(|l| l.config_sha256()),
            ),
        };
        Summary {
            name: last_part(name),
            size,
            size_exact,
            digest_source,
            signed_by: self.signed_by.clone(),
            config_partition_sha256: partition,
            config_sticks: self
                .config_stick
                .iter()
                .flat_map(|c| c.targets.iter().map(|t| t.path.display().to_string()))
                .collect(),
        }
    }
}

impl LabPlan {
    /// The image every node gets; each node's own config is in `describe`'s lines.
    pub fn summary(&self) -> Option<Summary> {
        let (_, first) = self.nodes.first()?;
        Some(Summary {
            config_partition_sha256: None,
            config_sticks: Vec::new(),
            ..first.summary()
        })
    }
}

/// "talos-amd64.raw.xz" of "https://host/a/talos-amd64.raw.xz?token=…" or of a path.
fn last_part(source: &str) -> String {
    let path = source.split(['?', '#']).next().unwrap_or(source);
    path.rsplit(['/', '\\'])
        .find(|p| !p.is_empty())
        .unwrap_or(path)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::last_part;

    #[test]
    fn names_the_image_by_its_last_part_without_query_or_credentials() {
        assert_eq!(
            last_part("https://f.example/image/abc/v1.9.0/metal-amd64.raw.xz?token=s3cret"),
            "metal-amd64.raw.xz"
        );
        assert_eq!(last_part("/home/me/talos.raw"), "talos.raw");
        assert_eq!(last_part(r"C:\Users\me\talos.raw"), "talos.raw");
        assert_eq!(last_part("https://f.example/dir/"), "dir");
    }
}
