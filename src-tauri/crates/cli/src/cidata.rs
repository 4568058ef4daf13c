//! `labflash cidata`: the NoCloud config image (FAT, label CIDATA) Talos reads its config from.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use labflash_core::sources::cidata::{self, Cidata, CidataRequest};

use crate::output::Output;

#[derive(Args)]
pub struct CidataArgs {
    /// The machine config (YAML), copied byte for byte to `user-data`.
    #[arg(long, value_name = "FILE")]
    pub user_data: PathBuf,

    /// The node's hostname (a lowercase DNS label), written to `meta-data`.
    #[arg(long, value_name = "NAME")]
    pub hostname: String,

    /// `instance-id` in `meta-data` [default: the hostname].
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,

    /// A cloud-init network config (YAML), copied to `network-config`.
    #[arg(long, value_name = "FILE")]
    pub network_config: Option<PathBuf>,

    /// Where to write the image (created 0600).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
}

pub fn run(args: CidataArgs, out: &Output) -> ExitCode {
    let request = CidataRequest {
        user_data: args.user_data,
        hostname: args.hostname,
        instance_id: args.instance_id,
        network_config: args.network_config,
        output: args.output,
    };
    match cidata::build(&request) {
        Ok(c) => out.success(&c, || human(&c)),
        Err(e) => out.fail(e.into()),
    }
}

fn human(c: &Cidata) -> String {
    format!(
        "{}\nsha256 {}\nsize   {} bytes\n",
        c.path.display(),
        c.sha256,
        c.size
    )
}
