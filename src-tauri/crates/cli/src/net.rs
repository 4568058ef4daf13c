//! The network options every downloading command shares.

use std::path::PathBuf;

use clap::Args;
use labflash_core::fetch::http::{Http, HttpPolicy};

use crate::output::Failure;

#[derive(Args, Clone, Default)]
pub struct NetArgs {
    /// A PEM file of CA certificates to trust beside the system's (a lab's own CA).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

impl NetArgs {
    pub fn http(&self) -> Result<Http, Failure> {
        Ok(Http::new(HttpPolicy {
            ca_certs: self.ca_cert.iter().cloned().collect(),
            ..HttpPolicy::default()
        })?)
    }
}
