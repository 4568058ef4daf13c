//! A lab in one run: one boot image, fetched, proved and decoded once, written to every node's
//! stick at the same time, each stick with its own config (a cidata partition on it, or a config
//! stick of its own). Each node is planned as a flash of its own from the one prepared image, so
//! every rule (the release tables, the one-stick refusal, the drive rules) holds per node; what
//! only a lab can get wrong, one drive named for two nodes, is refused here. The nodes are
//! written together from one read of the image (`flash::run_all`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fetch::cache::Cache;
use crate::fetch::http::Http;
use crate::flash::rules::{Approved, Chosen};
use crate::flash::target_cancel::TargetCancels;
use crate::flash::{self, Flashed, Plan, Request};
use crate::io::identity::Identity;
use crate::progress::ProgressSink;
use crate::sources;
use crate::CancellationToken;

/// One node of a lab: what it is called and the drive (or drives) it gets.
#[derive(Clone, Debug)]
pub struct Node {
    /// The node's name (its hostname, or the config's file name), for messages and the record.
    pub name: String,
    /// Its boot stick.
    pub to: Chosen,
    /// Its cidata image: a partition on its boot stick, or written whole onto `config_to`.
    pub config: Option<PathBuf>,
    pub config_to: Option<Chosen>,
}

/// Every node's own plan, approved, in the lab's order.
pub struct LabPlan {
    pub nodes: Vec<(String, Plan)>,
}

impl LabPlan {
    /// Every drive the lab writes, the config sticks' too: what the operator confirms.
    pub fn all_targets(&self) -> Vec<Approved> {
        self.nodes
            .iter()
            .flat_map(|(_, p)| p.all_targets())
            .collect()
    }

    /// Each node's targets' own cancels, by path (see [`Plan::target_cancels`]).
    pub fn target_cancels(&self) -> TargetCancels {
        TargetCancels::new(self.all_targets().into_iter().map(|t| (t.path, t.cancel)))
    }

    /// What will be written, for the confirmation: the image once (every node gets the same),
    /// then each node with its drives and its config's digest.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.nodes.first().map_or_else(Vec::new, |(_, plan)| {
            plan.describe()
                .into_iter()
                .filter(|l| !l.starts_with("config"))
                .collect()
        });
        for (name, plan) in &self.nodes {
            let drives: Vec<String> = plan
                .all_targets()
                .iter()
                .map(|t| t.path.display().to_string())
                .collect();
            let config = match (plan.config_sha256(), &plan.config_stick) {
                (Some(d), Some(_)) => {
                    format!(", its config SHA-256 {d} on the second (a stick of its own)")
                }
                (Some(d), None) => format!(", its config SHA-256 {d} as partition cidata"),
                (None, _) => String::new(),
            };
            lines.push(format!("node {name}: {}{config}", drives.join(" and ")));
        }
        lines
    }

    /// Every node's warnings, each said once.
    pub fn warnings(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for (_, plan) in &self.nodes {
            for w in &plan.warnings {
                if !all.contains(w) {
                    all.push(w.clone());
                }
            }
        }
        all
    }
}

/// What one node's flash did.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFlashed {
    pub node: String,
    /// The node's result; absent when its flash failed as a whole (then `error` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub flashed: Option<Flashed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub error: Option<String>,
    #[serde(skip)]
    pub error_kind: Option<crate::ErrorKind>,
    /// The drives its plan approved (its config stick's too), as the record names them.
    #[serde(skip)]
    #[cfg_attr(feature = "ts", ts(skip))]
    pub approved: Vec<Approved>,
}

/// Plans a lab: `base` says the image (its request, or an image already prepared) and the
/// options; its own targets and config are not used. The image is prepared once; each node is
/// planned from it.
pub async fn plan(
    base: &Request,
    nodes: &[Node],
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<LabPlan> {
    if nodes.is_empty() {
        return Err(Error::BadInput("a lab needs at least one node".into()));
    }
    refuse_shared_names(nodes)?;
    let prepared = match &base.prepared {
        Some(prepared) => prepared.clone(),
        None => Box::new(sources::prepare(&base.image, http, cache, cancel, progress).await?),
    };
    // Every node at once: each lays out its stick from the image's first MiB and reads its
    // config image.
    let planning = nodes.iter().map(|node| {
        let request = Request {
            targets: vec![node.to.clone()],
            config: node.config.clone(),
            config_to: node.config_to.clone(),
            prepared: Some(prepared.clone()),
            ..base.clone()
        };
        async move {
            let plan = flash::plan(&request, http, cache, cancel, progress)
                .await
                .map_err(|e| named(&node.name, e))?;
            Ok::<_, Error>((node.name.clone(), plan))
        }
    });
    let planned = futures_util::future::try_join_all(planning).await?;
    refuse_shared_drives(&planned)?;
    Ok(LabPlan { nodes: planned })
}

/// Runs every node's flash at the same time (blocking): the image is read once for every
/// node's sticks, each with its own config laid over it (see `flash::run_all`); says what each
/// node did: one node's failure does not stop the others.
pub fn run(
    plan: LabPlan,
    http: &Http,
    cache: &Cache,
    rt: &tokio::runtime::Handle,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Vec<NodeFlashed> {
    let (names, plans): (Vec<String>, Vec<Plan>) = plan.nodes.into_iter().unzip();
    let approved: Vec<Vec<Approved>> = plans.iter().map(Plan::all_targets).collect();
    let results = flash::run_all(plans, http, cache, rt, cancel, progress);
    names
        .into_iter()
        .zip(approved)
        .zip(results)
        .map(|((node, approved), result)| match result {
            Ok(flashed) => NodeFlashed {
                node,
                flashed: Some(flashed),
                error: None,
                error_kind: None,
                approved,
            },
            Err(e) => NodeFlashed {
                node,
                flashed: None,
                error: Some(e.to_string()),
                error_kind: Some(e.kind()),
                approved,
            },
        })
        .collect()
}

/// A node's refusal, naming the node.
fn named(node: &str, e: Error) -> Error {
    match e {
        Error::BadInput(why) => Error::BadInput(format!("node {node}: {why}")),
        Error::Refused { target, reason } => Error::Refused {
            target,
            reason: format!("{reason} (node {node})"),
        },
        other => other,
    }
}

/// Two nodes naming one drive path (boot or config stick), before anything is asked of it.
fn refuse_shared_names(nodes: &[Node]) -> Result<()> {
    let mut seen: Vec<(&PathBuf, &str)> = Vec::new();
    for node in nodes {
        for chosen in std::iter::once(&node.to).chain(&node.config_to) {
            if let Some((_, other)) = seen.iter().find(|(p, _)| **p == chosen.path) {
                return Err(Error::Refused {
                    target: chosen.path.display().to_string(),
                    reason: format!(
                        "it is named for node {other} and for node {}; each node needs drives of its own",
                        node.name
                    ),
                });
            }
            seen.push((&chosen.path, &node.name));
        }
    }
    Ok(())
}

/// Two nodes whose approved drives are one drive under two names (a link, another spelling).
fn refuse_shared_drives(planned: &[(String, Plan)]) -> Result<()> {
    let mut seen: Vec<(Approved, &str)> = Vec::new();
    for (name, plan) in planned {
        for t in plan.all_targets() {
            let same = seen.iter().find(|(s, _)| {
                s.path == t.path || (t.identity != Identity::NewFile && s.identity == t.identity)
            });
            if let Some((_, other)) = same {
                return Err(Error::Refused {
                    target: t.path.display().to_string(),
                    reason: format!(
                        "it is the drive of node {other} and of node {name}; each node needs drives of its own"
                    ),
                });
            }
            seen.push((t, name));
        }
    }
    Ok(())
}
