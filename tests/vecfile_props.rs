//! End-to-end properties of the public vector-file API (`vladdb::vecfile`): whatever is
//! written reads back identically through every format, and every damaged file is a
//! one-line error naming the file and the right byte offset, never a panic.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tempfile::TempDir;
use vladdb::Error;
use vladdb::codecs::ElemType;
use vladdb::vecfile::{
    VectorFile, read_ivecs, read_npy_i64, read_npy_u64, write_bvecs, write_fvecs, write_ivecs,
    write_npy_f32, write_npy_i64, write_npy_u8, write_npy_u64,
};

/// A matrix shape and that many values.
fn matrix<T: std::fmt::Debug>(
    value: impl Strategy<Value = T> + Clone,
) -> impl Strategy<Value = (usize, usize, Vec<T>)> {
    (1usize..40, 1usize..48).prop_flat_map(move |(rows, dim)| {
        proptest::collection::vec(value.clone(), rows * dim).prop_map(move |data| (rows, dim, data))
    })
}

/// The offset of an [`Error::VectorFile`] for `path`, after checking its message.
fn error_offset<T: std::fmt::Debug>(result: Result<T, Error>, path: &Path) -> u64 {
    let err = result.expect_err("a damaged file must not open");
    let message = err.to_string();
    assert!(!message.contains('\n'), "multi-line message: {message}");
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    match err {
        Error::VectorFile { offset, .. } => {
            assert!(
                message.ends_with(&format!("(at byte {offset})")),
                "{message}"
            );
            offset
        }
        other => panic!("expected a vector-file error, got {other:?}"),
    }
}

fn copy_prefix(dir: &TempDir, from: &Path, len: usize) -> PathBuf {
    let bytes = std::fs::read(from).unwrap();
    let to = dir.path().join(format!(
        "cut.{}",
        from.extension().unwrap().to_str().unwrap()
    ));
    std::fs::write(&to, &bytes[..len]).unwrap();
    to
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn f32_matrices_read_back_identically_from_fvecs_and_npy(
        (rows, dim, data) in matrix(-1e30f32..1e30),
        cut_fraction in 0.0f64..1.0,
    ) {
        let dir = TempDir::new().unwrap();
        let fvecs = dir.path().join("m.fvecs");
        let npy = dir.path().join("m.npy");
        write_fvecs(&fvecs, &data, dim).unwrap();
        write_npy_f32(&npy, &data, rows, dim).unwrap();
        for path in [&fvecs, &npy] {
            let file = VectorFile::open(path).unwrap();
            prop_assert_eq!((file.rows(), file.dim(), file.elem()), (rows, dim, ElemType::F32));
            prop_assert_eq!(file.vectors().to_f32_vec(0, rows), data.clone());
            let last = file.vectors().slice(rows - 1, 1).unwrap();
            prop_assert_eq!(last.to_f32_vec(0, 1), data[(rows - 1) * dim..].to_vec());
        }

        // Any cut of the TEXMEX file: whole rows open with fewer rows; anything else is an
        // error at the start of the incomplete row.
        let row_size = 4 + 4 * dim;
        let len = rows * row_size;
        let cut = 1 + ((len - 1) as f64 * cut_fraction) as usize;
        let path = copy_prefix(&dir, &fvecs, cut);
        if cut.is_multiple_of(row_size) {
            let file = VectorFile::open(&path).unwrap();
            prop_assert_eq!(file.rows(), cut / row_size);
            prop_assert_eq!(file.vectors().to_f32_vec(0, file.rows()), data[..file.rows() * dim].to_vec());
        } else {
            prop_assert_eq!(error_offset(VectorFile::open(&path), &path), (cut / row_size * row_size) as u64);
        }
        // Any cut of the npy file is an error.
        let npy_len = std::fs::metadata(&npy).unwrap().len() as usize;
        let cut = 1 + ((npy_len - 2) as f64 * cut_fraction) as usize;
        let path = copy_prefix(&dir, &npy, cut);
        prop_assert!(error_offset(VectorFile::open(&path), &path) <= cut as u64);
    }

    #[test]
    fn u8_matrices_read_back_identically_from_bvecs_and_npy((rows, dim, data) in matrix(any::<u8>())) {
        let dir = TempDir::new().unwrap();
        let bvecs = dir.path().join("m.bvecs");
        let npy = dir.path().join("m.npy");
        write_bvecs(&bvecs, &data, dim).unwrap();
        write_npy_u8(&npy, &data, rows, dim).unwrap();
        let a = VectorFile::open(&bvecs).unwrap();
        let b = VectorFile::open(&npy).unwrap();
        for file in [&a, &b] {
            prop_assert_eq!((file.rows(), file.dim(), file.elem()), (rows, dim, ElemType::U8));
            for r in 0..rows {
                prop_assert_eq!(file.vectors().row_bytes(r), &data[r * dim..(r + 1) * dim]);
            }
        }
        prop_assert_eq!(a.vectors().to_f32_vec(0, rows), b.vectors().to_f32_vec(0, rows));
    }

    #[test]
    fn a_bad_dimension_header_is_found_in_any_row(
        (rows, dim, data) in matrix(any::<i32>()),
        bad_row_fraction in 0.0f64..1.0,
        bad_dim in any::<i32>(),
    ) {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("gt.ivecs");
        write_ivecs(&path, &data, dim).unwrap();
        let m = read_ivecs(&path).unwrap();
        prop_assert_eq!((m.rows, m.dim), (rows, dim));
        prop_assert_eq!(&m.data, &data);

        let bad_row = ((rows - 1) as f64 * bad_row_fraction) as usize;
        prop_assume!(bad_dim != dim as i32);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bad_row * (4 + 4 * dim);
        bytes[at..at + 4].copy_from_slice(&bad_dim.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let offset = error_offset(read_ivecs(&path), &path);
        if bad_row == 0 {
            // Row 0 sets the expected dimension, so the damage shows as a bad layout.
            prop_assert!(offset <= bytes.len() as u64);
        } else {
            prop_assert_eq!(offset, at as u64);
        }
    }

    #[test]
    fn int_arrays_read_back_identically(signed in proptest::collection::vec(any::<i64>(), 0..200)) {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("truth.npy");
        write_npy_i64(&path, &signed).unwrap();
        prop_assert_eq!(read_npy_i64(&path).unwrap(), signed.clone());
        let unsigned: Vec<u64> = signed.iter().map(|&v| v as u64).collect();
        let path = dir.path().join("offsets.npy");
        write_npy_u64(&path, &unsigned).unwrap();
        prop_assert_eq!(read_npy_u64(&path).unwrap(), unsigned);
        // Neither is readable as the other's type or as vectors.
        prop_assert!(read_npy_i64(&path).is_err());
        prop_assert!(VectorFile::open(&path).is_err());
    }

    #[test]
    fn random_bytes_with_a_valid_npy_prefix_never_panic(
        header in "\\{'descr': '(<f4|\\|u1|<i8|<u8|<f8)', 'fortran_order': (True|False), 'shape': \\(([0-9]{1,3}, ?){0,3}\\)\\}",
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let dir = TempDir::new().unwrap();
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&body);
        let path = dir.path().join("r.npy");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(file) = VectorFile::open(&path) {
            let expected = file.rows() * file.dim() * file.elem().size();
            prop_assert_eq!(body.len(), expected);
            let _ = file.vectors().to_f32_vec(0, file.rows());
        }
        if let Ok(v) = read_npy_i64(&path) {
            prop_assert_eq!(v.len() * 8, body.len());
        }
        if let Ok(v) = read_npy_u64(&path) {
            prop_assert_eq!(v.len() * 8, body.len());
        }
    }
}
