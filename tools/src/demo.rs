//! `vladdb demo`: the one-command tour on the bundled sample (`data/sample`).

use std::path::PathBuf;

use clap::Args;

use crate::bench::{self, BenchArgs};
use crate::{CliResult, default_sample_dir};

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Directory with base.bvecs, learn.bvecs, query.bvecs and groundtruth.ivecs
    /// (default: the sample bundled in the source tree).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Search threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(args: &DemoArgs) -> CliResult<()> {
    let dir = args.data.clone().unwrap_or_else(default_sample_dir);
    let file = |name: &str| dir.join(name);
    if !file("base.bvecs").exists() {
        return Err(format!(
            "{}: no base.bvecs here; pass --data DIR with the sample files",
            dir.display()
        ));
    }
    println!("vladdb demo on {}", dir.display());
    let args_for = |spec: &str, nprobe: Vec<usize>, rerank: usize| BenchArgs {
        base: Some(file("base.bvecs")),
        query: Some(file("query.bvecs")),
        learn: Some(file("learn.bvecs")),
        gt: Some(file("groundtruth.ivecs")),
        queries: None,
        spec: vec![spec.into()],
        nprobe,
        k: 100,
        threads: args.threads,
        rerank,
        runs: Some(3),
        json: false,
        memory: false,
        learn_sets: None,
        base_sets: None,
        query_sets: None,
        truth: None,
        plotting: Default::default(),
    };
    println!("\n1. exact search, straight over the memory-mapped file (the yardstick):");
    bench::run(&args_for("Flat", vec![1], 0))?;
    println!(
        "\n2. IVF256,PQ16 through the engine: trained on learn.bvecs, 16 bytes per vector in a\n   \
         memory-mapped segment, searched at several nprobe (recall against the exact top-100):"
    );
    bench::run(&args_for("IVF256,PQ16", vec![1, 4, 16, 64], 0))?;
    println!(
        "\n3. 4-bit fast scan (IVF256,PQ32x4fs: 16 bytes per vector scored in SIMD registers),\n   \
         with the vectors also stored (RFlat) to re-rank 8 × k candidates exactly:"
    );
    bench::run(&args_for("IVF256,PQ32x4fs,RFlat", vec![4, 16], 8))?;
    println!(
        "\nR1@R: the true nearest neighbour is among the first R results; R10@10: overlap of the\n\
         top-10 with the true top-10. More: README.md, docs/benchmarks.md."
    );
    Ok(())
}
