//! Measures one PCA fit (route, fit seconds, explained variance, reconstruction error)
//! on real vectors stored as `.npy` (float32 or uint8, C order), and prints one JSON line.
//! `tools/scripts/pca_faiss.py` runs it beside FAISS's `PCAMatrix` on the same files.
//!
//! usage: pca_measure --train TRAIN.npy [--test TEST.npy] --d-out 128
//!        [--route auto|linfa|covariance|randomized] [--rows N] [--save-matrix OUT.npy]

use std::time::Instant;

use vladdb_codecs::pca::{Pca, PcaOptions, PcaRoute};

/// A row-major matrix read from a `.npy` file, converted to f32.
struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

fn read_npy(path: &str) -> Result<Matrix, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{path}: not a .npy file"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(format!("{path}: truncated header")),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + header_len)
            .ok_or("truncated header")?,
    )
    .map_err(|e| format!("{path}: {e}"))?;
    if header.contains("'fortran_order': True") {
        return Err(format!("{path}: Fortran order is not supported"));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or(format!("{path}: no shape in header"))?;
    let dims: Vec<usize> = shape_text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .map_err(|e| format!("{path}: shape: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(format!("{path}: expected a 2-D array, got shape {dims:?}"));
    };
    let body = &bytes[start + header_len..];
    let data: Vec<f32> = if header.contains("'<f4'") {
        if body.len() != rows * cols * 4 {
            return Err(format!(
                "{path}: body has {} bytes, expected {}",
                body.len(),
                rows * cols * 4
            ));
        }
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else if header.contains("'|u1'") {
        if body.len() != rows * cols {
            return Err(format!(
                "{path}: body has {} bytes, expected {}",
                body.len(),
                rows * cols
            ));
        }
        body.iter().map(|&b| b as f32).collect()
    } else {
        return Err(format!(
            "{path}: only <f4 and |u1 arrays are supported ({header})"
        ));
    };
    Ok(Matrix { rows, cols, data })
}

fn write_npy_f32(path: &str, rows: usize, cols: usize, data: &[f32]) -> Result<(), String> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).map_err(|e| format!("{path}: {e}"))
}

/// Mean squared centred norm (the total variance, population normalisation).
fn total_variance(data: &[f32], dim: usize, mean: &[f32]) -> f64 {
    let n = data.len() / dim;
    let sum: f64 = data
        .chunks_exact(dim)
        .map(|row| {
            row.iter()
                .zip(mean)
                .map(|(&x, &m)| ((x - m) as f64).powi(2))
                .sum::<f64>()
        })
        .sum();
    sum / n as f64
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let train_path = get("--train").ok_or("--train is required")?;
    let d_out: usize = get("--d-out")
        .ok_or("--d-out is required")?
        .parse()
        .map_err(|e| format!("--d-out: {e}"))?;
    let route = match get("--route").as_deref().unwrap_or("auto") {
        "auto" => PcaRoute::Auto,
        "linfa" => PcaRoute::Linfa,
        "covariance" => PcaRoute::Covariance,
        "randomized" => PcaRoute::Randomized,
        other => return Err(format!("unknown route {other}")),
    };
    let mut train = read_npy(&train_path)?;
    if let Some(rows) = get("--rows") {
        let rows: usize = rows.parse().map_err(|e| format!("--rows: {e}"))?;
        train.rows = train.rows.min(rows);
        train.data.truncate(train.rows * train.cols);
    }
    let opts = PcaOptions::new(d_out);
    let start = Instant::now();
    let pca =
        Pca::fit_with_route(&train.data, train.cols, &opts, route).map_err(|e| e.to_string())?;
    let fit_s = start.elapsed().as_secs_f64();
    let recon_train = pca
        .reconstruction_error(&train.data)
        .map_err(|e| e.to_string())?;
    let total_train = total_variance(&train.data, train.cols, pca.mean());
    let mut line = format!(
        "{{\"impl\": \"vladdb\", \"route\": \"{:?}\", \"requested\": \"{:?}\", \"d_in\": {}, \"n\": {}, \"d_out\": {}, \
         \"fit_s\": {:.3}, \"explained_variance_ratio\": {:.6}, \"measured_explained_ratio\": {:.6}, \
         \"recon_train\": {:.6e}, \"total_variance\": {:.6e}, \"eigenvalues_head\": {:?}, \"eigenvalue_last\": {:.6e}",
        pca.route().unwrap_or(route),
        route,
        train.cols,
        train.rows,
        d_out,
        fit_s,
        pca.explained_variance_ratio(),
        1.0 - recon_train as f64 / total_train,
        recon_train,
        total_train,
        &pca.eigenvalues()[..pca.d_out().min(4)],
        pca.eigenvalues()[pca.d_out() - 1],
    );
    if let Some(test_path) = get("--test") {
        let test = read_npy(&test_path)?;
        if test.cols != train.cols {
            return Err(format!(
                "test has {} columns, train {}",
                test.cols, train.cols
            ));
        }
        let recon_test = pca
            .reconstruction_error(&test.data)
            .map_err(|e| e.to_string())?;
        let total_test = total_variance(&test.data, test.cols, pca.mean());
        line.push_str(&format!(
            ", \"recon_test\": {recon_test:.6e}, \"test_explained_ratio\": {:.6}",
            1.0 - recon_test as f64 / total_test
        ));
    }
    if let Some(out) = get("--save-matrix") {
        write_npy_f32(&out, pca.d_out(), pca.d_in(), pca.matrix())?;
    }
    line.push('}');
    println!("{line}");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("pca_measure: {e}");
        std::process::exit(1);
    }
}
