//! Times `VectorFile::open` (full layout validation) and one sequential pass over the
//! vectors of a file given on the command line.
//!
//! `cargo run --release -p vladdb --example open_vecs -- ../shared/data/debian-sift/base.bvecs`

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use vladdb::VectorFile;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: open_vecs FILE.{{fvecs,bvecs,npy}}");
        return ExitCode::FAILURE;
    };
    let start = Instant::now();
    let file = match VectorFile::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let opened = start.elapsed();
    let mut out = std::io::stdout().lock();
    // Printing errors (e.g. a closed pipe) are ignored rather than panicking.
    let _ = writeln!(
        out,
        "{}: {} rows x {} ({:?}), opened in {:.1} ms",
        path,
        file.rows(),
        file.dim(),
        file.elem(),
        opened.as_secs_f64() * 1e3
    );
    let start = Instant::now();
    let vectors = file.vectors();
    let mut row = vec![0.0f32; file.dim()];
    let mut checksum = 0.0f64;
    for i in 0..vectors.rows() {
        vectors.row_f32_into(i, &mut row);
        checksum += row.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    let _ = writeln!(
        out,
        "scanned all rows as f32 in {:.1} ms (sum of components {checksum})",
        start.elapsed().as_secs_f64() * 1e3
    );
    ExitCode::SUCCESS
}
