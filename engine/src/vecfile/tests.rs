//! Tests of the vector-file readers and writers on small generated files.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tempfile::TempDir;

use super::*;

/// A deterministic pseudo-random sequence (xorshift), so tests need no data files.
fn pseudo_random(seed: u64, n: usize) -> Vec<u64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })
        .collect()
}

fn write_bytes(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The offset and reason of an [`Error::VectorFile`]; panics (failing the test) otherwise.
fn vector_file_error<T: std::fmt::Debug>(result: Result<T>, path: &Path) -> (u64, String) {
    match result {
        Err(Error::VectorFile {
            path: p,
            offset,
            reason,
        }) => {
            assert_eq!(p, path);
            (offset, reason)
        }
        other => panic!("expected a vector-file error, got {other:?}"),
    }
}

/// TEXMEX bytes: rows of `dims[i]` (the declared dimension) followed by `body` bytes.
fn texmex_bytes(dims: &[i32], row_body: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (r, &d) in dims.iter().enumerate() {
        out.extend_from_slice(&d.to_le_bytes());
        out.extend((0..row_body).map(|i| (r * 31 + i) as u8));
    }
    out
}

/// A hand-built `.npy` file.
fn npy_bytes(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn fvecs_round_trip_is_exact_and_zero_copy() {
    let dir = TempDir::new().unwrap();
    let (rows, dim) = (37, 5);
    let data: Vec<f32> = pseudo_random(1, rows * dim)
        .iter()
        .map(|&v| (v % 10_000) as f32 / 7.0 - 500.0)
        .collect();
    let path = dir.path().join("a.fvecs");
    write_fvecs(&path, &data, dim).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len() as usize,
        rows * (4 + dim * 4)
    );
    let file = VectorFile::open(&path).unwrap();
    assert_eq!(
        (file.rows(), file.dim(), file.elem()),
        (rows, dim, ElemType::F32)
    );
    assert_eq!(file.format(), Format::Fvecs);
    assert_eq!(file.path(), path);
    let view = file.vectors();
    assert_eq!(view.to_f32_vec(0, rows), data);
    // The view points into the mapping: row 3's bytes sit right after its header.
    let row3 = view.row_bytes(3);
    let at = row3.as_ptr() as usize - file.mmap.as_ptr() as usize;
    assert_eq!(at, 3 * (4 + dim * 4) + 4);
}

#[test]
fn bvecs_round_trip() {
    let dir = TempDir::new().unwrap();
    let data: Vec<u8> = pseudo_random(2, 128 * 9).iter().map(|&v| v as u8).collect();
    let path = dir.path().join("b.BVECS");
    write_bvecs(&path, &data, 128).unwrap();
    let file = VectorFile::open(&path).unwrap();
    assert_eq!(
        (file.rows(), file.dim(), file.elem()),
        (9, 128, ElemType::U8)
    );
    let expected: Vec<f32> = data.iter().map(|&b| f32::from(b)).collect();
    assert_eq!(file.vectors().to_f32_vec(0, 9), expected);
    assert_eq!(file.vectors().row_bytes(8), &data[8 * 128..]);
}

#[test]
fn ivecs_round_trip() {
    let dir = TempDir::new().unwrap();
    let data: Vec<i32> = pseudo_random(3, 100 * 7)
        .iter()
        .map(|&v| v as i32)
        .collect();
    let path = dir.path().join("gt.ivecs");
    write_ivecs(&path, &data, 100).unwrap();
    let m = read_ivecs(&path).unwrap();
    assert_eq!((m.rows, m.dim), (7, 100));
    assert_eq!(m.data, data);
    assert_eq!(m.row(6), Some(&data[600..]));
    assert_eq!(m.row(7), None);
    assert_eq!(m.iter_rows().count(), 7);
    // ivecs hold ids, not vectors.
    let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
    assert_eq!(offset, 0);
    assert!(reason.contains("read_ivecs"), "{reason}");
}

#[test]
fn npy_matrix_round_trips() {
    let dir = TempDir::new().unwrap();
    let f: Vec<f32> = pseudo_random(4, 6 * 3)
        .iter()
        .map(|&v| f32::from_bits((v as u32 & 0x3fff_ffff) | 0x3c00_0000))
        .collect();
    let path = dir.path().join("f.npy");
    write_npy_f32(&path, &f, 6, 3).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        (bytes.len() - 6 * 3 * 4) % 64,
        0,
        "data aligned to 64 bytes"
    );
    assert!(
        String::from_utf8_lossy(&bytes[10..128])
            .starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (6, 3), }")
    );
    let file = VectorFile::open(&path).unwrap();
    assert_eq!(
        (file.rows(), file.dim(), file.elem()),
        (6, 3, ElemType::F32)
    );
    assert_eq!(file.vectors().to_f32_vec(0, 6), f);

    let u: Vec<u8> = (0..=255).collect();
    let path = dir.path().join("u.npy");
    write_npy_u8(&path, &u, 16, 16).unwrap();
    let file = VectorFile::open(&path).unwrap();
    assert_eq!(
        (file.rows(), file.dim(), file.elem()),
        (16, 16, ElemType::U8)
    );
    assert_eq!(file.vectors().row_bytes(15), &u[240..]);

    // Zero rows is a valid (non-empty) npy file.
    let path = dir.path().join("empty.npy");
    write_npy_f32(&path, &[], 0, 8).unwrap();
    let file = VectorFile::open(&path).unwrap();
    assert_eq!((file.rows(), file.dim()), (0, 8));
    assert!(file.is_empty() && file.vectors().is_empty());
}

#[test]
fn npy_int_round_trips() {
    let dir = TempDir::new().unwrap();
    let signed: Vec<i64> = pseudo_random(5, 1001).iter().map(|&v| v as i64).collect();
    let path = dir.path().join("truth.npy");
    write_npy_i64(&path, &signed).unwrap();
    assert_eq!(read_npy_i64(&path).unwrap(), signed);
    // A uint64 reader refuses int64 data.
    let (_, reason) = vector_file_error(read_npy_u64(&path), &path);
    assert!(
        reason.contains("'<i8'") && reason.contains("'<u8'"),
        "{reason}"
    );

    let unsigned = pseudo_random(6, 77);
    let path = dir.path().join("offsets.npy");
    write_npy_u64(&path, &unsigned).unwrap();
    assert_eq!(read_npy_u64(&path).unwrap(), unsigned);
    write_npy_u64(&path, &[]).unwrap();
    assert_eq!(read_npy_u64(&path).unwrap(), Vec::<u64>::new());
    // A 2-D matrix is not a 1-D int array, nor the reverse.
    let path2 = dir.path().join("m.npy");
    write_npy_u8(&path2, &[1, 2, 3, 4], 2, 2).unwrap();
    assert!(read_npy_u64(&path2).is_err());
    let path3 = dir.path().join("v.npy");
    write_npy_i64(&path3, &[1, 2]).unwrap();
    let (_, reason) = vector_file_error(VectorFile::open(&path3), &path3);
    assert!(reason.contains("'<i8'"), "{reason}");
}

#[test]
fn npy_versions_2_and_3_and_old_headers_are_read() {
    let dir = TempDir::new().unwrap();
    let data: Vec<u8> = (0..12).collect();
    for (major, header) in [
        (
            2,
            "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4), }\n",
        ),
        (
            3,
            "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (3, 4)}",
        ),
        (
            1,
            "{'descr':'|u1','fortran_order':False,'shape':(3L, 4L)}   \n",
        ),
        (
            1,
            "{'shape': (3, 4), 'fortran_order': False, 'descr': '<u1', }",
        ),
    ] {
        let path = write_bytes(&dir, "v.npy", &npy_bytes(major, header, &data));
        let file = VectorFile::open(&path).unwrap();
        assert_eq!((file.rows(), file.dim(), file.elem()), (3, 4, ElemType::U8));
        assert_eq!(file.vectors().row_bytes(2), &data[8..]);
    }
}

#[test]
fn empty_file_and_unknown_extension_are_errors() {
    let dir = TempDir::new().unwrap();
    for name in ["e.fvecs", "e.bvecs", "e.npy"] {
        let path = write_bytes(&dir, name, &[]);
        let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
        assert_eq!((offset, reason.as_str()), (0, "empty file"));
    }
    let path = write_bytes(&dir, "e.ivecs", &[]);
    assert_eq!(vector_file_error(read_ivecs(&path), &path).1, "empty file");
    let path = write_bytes(&dir, "e.npy", &[]);
    assert_eq!(
        vector_file_error(read_npy_i64(&path), &path).1,
        "empty file"
    );

    let path = write_bytes(&dir, "x.csv", &texmex_bytes(&[2], 8));
    let (_, reason) = vector_file_error(VectorFile::open(&path), &path);
    assert!(reason.contains("'.csv'"), "{reason}");
    let path = write_bytes(&dir, "noext", &texmex_bytes(&[2], 8));
    assert!(VectorFile::open(&path).is_err());
    // read_ivecs refuses other known vector formats but reads unknown extensions.
    assert_eq!(read_ivecs(&path).unwrap().dim, 2);
    let path = write_bytes(&dir, "x.fvecs", &texmex_bytes(&[2], 8));
    assert!(read_ivecs(&path).is_err());

    let missing = dir.path().join("missing.fvecs");
    match VectorFile::open(&missing) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("missing.fvecs")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn truncated_texmex_files_name_the_offset() {
    let dir = TempDir::new().unwrap();
    let full = texmex_bytes(&[4; 6], 16); // 6 rows of 20 bytes
    // Mid-header of row 0: no complete dimension header at all.
    for len in 1..4 {
        let path = write_bytes(&dir, "t.fvecs", &full[..len]);
        let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
        assert_eq!(offset, 0);
        assert!(reason.starts_with("truncated"), "{reason}");
    }
    // Mid-header of a later row, and mid-row: the offset is the incomplete row's start.
    for (len, row) in [(42usize, 2u64), (61, 3), (99, 4), (119, 5), (24, 1)] {
        let path = write_bytes(&dir, "t.fvecs", &full[..len]);
        let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
        assert_eq!(offset, row * 20, "len {len}");
        let trailing = len as u64 - row * 20;
        assert!(
            reason.starts_with(&format!("truncated: {trailing} trailing bytes")),
            "{reason}"
        );
        let err = VectorFile::open(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: truncated", path.display())));
        assert!(err.ends_with(&format!("(at byte {})", row * 20)), "{err}");
    }
    // The same on the integer reader.
    let path = write_bytes(&dir, "t.ivecs", &full[..50]);
    assert_eq!(vector_file_error(read_ivecs(&path), &path).0, 40);
    // A first row whose dimension runs past the end of the file.
    let mut huge = texmex_bytes(&[1_000_000], 8);
    huge.extend_from_slice(&[0; 12]);
    let path = write_bytes(&dir, "t.bvecs", &huge);
    let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
    assert_eq!(offset, 0);
    assert!(reason.contains("truncated: 24 trailing bytes"), "{reason}");
}

#[test]
fn inconsistent_dimension_in_a_middle_row() {
    let dir = TempDir::new().unwrap();
    // Row 3 claims 7 components; the file length is still a multiple of the row size.
    let bytes = texmex_bytes(&[8, 8, 8, 7, 8, 8], 8);
    let path = write_bytes(&dir, "d.bvecs", &bytes);
    let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
    assert_eq!(offset, 3 * 12);
    assert_eq!(reason, "row 3 declares dimension 7, expected 8");
    // The last row is checked too, and negative values print as such.
    let bytes = texmex_bytes(&[2, 2, 2, -2], 8);
    let path = write_bytes(&dir, "d.fvecs", &bytes);
    let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
    assert_eq!(offset, 3 * 12);
    assert_eq!(reason, "row 3 declares dimension -2, expected 2");
    let path = write_bytes(&dir, "d.ivecs", &bytes);
    assert_eq!(vector_file_error(read_ivecs(&path), &path).0, 36);
}

#[test]
fn zero_and_negative_dimensions_are_errors() {
    let dir = TempDir::new().unwrap();
    for d in [0, -1, i32::MIN] {
        for name in ["z.fvecs", "z.bvecs"] {
            let path = write_bytes(&dir, name, &texmex_bytes(&[d, d], 4));
            let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
            assert_eq!(offset, 0);
            assert!(reason.contains(&format!("dimension {d}")), "{reason}");
        }
        let path = write_bytes(&dir, "z.ivecs", &texmex_bytes(&[d], 0));
        assert!(read_ivecs(&path).is_err());
    }
}

#[test]
fn npy_with_a_wrong_dtype_or_order_or_shape_is_refused() {
    let dir = TempDir::new().unwrap();
    let cases: [(&str, usize, &str); 9] = [
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
            32,
            "'<f8'",
        ),
        (
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }",
            16,
            "big-endian",
        ),
        (
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            16,
            "Fortran",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
            16,
            "2-D",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }",
            16,
            "2-D",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
            4,
            "2-D",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }",
            0,
            "dimension 0",
        ),
        (
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
            8,
            "structured",
        ),
        (
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 2), }",
            16,
            "True or False",
        ),
    ];
    for (header, data_len, expected) in cases {
        let path = write_bytes(&dir, "w.npy", &npy_bytes(1, header, &vec![0; data_len]));
        let (_, reason) = vector_file_error(VectorFile::open(&path), &path);
        assert!(reason.contains(expected), "{header}: {reason}");
    }
}

#[test]
fn npy_header_malformations_are_refused() {
    let dir = TempDir::new().unwrap();
    let good = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }";
    let data = [1u8, 2, 3, 4];
    let check = |bytes: &[u8], expected: &str, offset: Option<u64>| {
        let path = write_bytes(&dir, "h.npy", bytes);
        let (at, reason) = vector_file_error(VectorFile::open(&path), &path);
        assert!(reason.contains(expected), "{expected:?} not in {reason:?}");
        if let Some(o) = offset {
            assert_eq!(at, o, "{reason}");
        }
    };
    // Bad magic, including a TEXMEX file renamed to .npy.
    let mut bad = npy_bytes(1, good, &data);
    bad[1] = b'n';
    check(&bad, "bad magic", Some(0));
    check(&texmex_bytes(&[4, 4], 4), "bad magic", Some(0));
    // Truncated inside the magic / version / length prelude.
    let full = npy_bytes(1, good, &data);
    for len in [3, 7, 9] {
        check(&full[..len], "truncated", None);
    }
    // Unsupported version.
    let mut v4 = full.clone();
    v4[6] = 4;
    check(&v4, "version 4.0", Some(6));
    // Header length pointing past the end of the file, or absurdly large.
    let mut long = full.clone();
    long[8..10].copy_from_slice(&500u16.to_le_bytes());
    check(&long, "runs past the end", Some(8));
    let mut absurd = npy_bytes(2, good, &data);
    absurd[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    check(&absurd, "implausibly large", Some(8));
    // Header length too short: the dict is cut and the data is parsed as header.
    let mut short = full.clone();
    short[8..10].copy_from_slice(&20u16.to_le_bytes());
    check(&short, "bad npy header", None);
    // Dict problems.
    for (header, expected) in [
        ("{'descr': '|u1', 'shape': (2, 2), }", "must contain"),
        (
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), 'x': 1}",
            "unexpected header key",
        ),
        (
            "{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (2, 2)}",
            "twice",
        ),
        (
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, -2), }",
            "unexpected token",
        ),
        (
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), } junk",
            "after the dict",
        ),
        (
            "{'descr': '|u1, 'fortran_order': False, 'shape': (2, 2), }",
            "bad npy header",
        ),
        (
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 99999999999999999999)}",
            "out of range",
        ),
        (
            "{'descr': '|u1', 'fortran_order': False, 'shape': ((((((((((2,),),),),),),),),),)}",
            "nested",
        ),
        (
            "{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}",
            "overflows",
        ),
        (
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2)",
            "expected",
        ),
    ] {
        check(&npy_bytes(1, header, &data), expected, None);
    }
}

#[test]
fn npy_data_length_must_match_the_shape() {
    let dir = TempDir::new().unwrap();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }\n";
    let full = npy_bytes(1, header, &[7; 24]);
    let data_start = full.len() - 24;
    // Truncated at several offsets inside the data: the error points at the end of file.
    for cut in [1, 5, 12, 23] {
        let len = data_start + 24 - cut;
        let path = write_bytes(&dir, "d.npy", &full[..len]);
        let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
        assert_eq!(offset, len as u64);
        assert!(reason.starts_with("truncated"), "{reason}");
        assert!(
            reason.contains(&format!("the file has {}", 24 - cut)),
            "{reason}"
        );
    }
    // No data at all.
    let path = write_bytes(&dir, "d.npy", &full[..data_start]);
    assert!(
        vector_file_error(VectorFile::open(&path), &path)
            .1
            .starts_with("truncated")
    );
    // Trailing bytes after the array.
    let mut long = full.clone();
    long.extend_from_slice(&[0; 3]);
    let path = write_bytes(&dir, "d.npy", &long);
    let (offset, reason) = vector_file_error(VectorFile::open(&path), &path);
    assert_eq!(offset, full.len() as u64);
    assert!(reason.contains("3 trailing bytes"), "{reason}");
}

#[test]
fn writers_reject_bad_arguments() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("w.fvecs");
    assert!(matches!(
        write_fvecs(&path, &[1.0; 6], 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        write_fvecs(&path, &[1.0; 7], 2),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        write_ivecs(&path, &[1; 7], 3),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        write_bvecs(&path, &[1; 7], 0),
        Err(Error::InvalidArgument(_))
    ));
    let npy = dir.path().join("w.npy");
    assert!(matches!(
        write_npy_f32(&npy, &[1.0; 6], 2, 2),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        write_npy_u8(&npy, &[1; 6], usize::MAX, 2),
        Err(Error::InvalidArgument(_))
    ));
    // A writer that cannot create its file reports the path.
    let bad = dir.path().join("no/such/dir/w.fvecs");
    match write_fvecs(&bad, &[1.0], 1) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("no/such/dir")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// Every reader on `path`; if a vector file opens, every row must be readable.
fn read_everything(path: &Path) {
    if let Ok(file) = VectorFile::open(path) {
        let view = file.vectors();
        let mut row = vec![0.0; file.dim()];
        for i in 0..view.rows() {
            view.row_f32_into(i, &mut row);
        }
    }
    if let Ok(m) = read_ivecs(path) {
        assert_eq!(m.data.len(), m.rows * m.dim);
    }
    let _ = read_npy_i64(path);
    let _ = read_npy_u64(path);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let dir = TempDir::new().unwrap();
        for ext in ["fvecs", "bvecs", "ivecs", "npy"] {
            read_everything(&write_bytes(&dir, &format!("f.{ext}"), &bytes));
        }
    }

    #[test]
    fn mutated_valid_files_never_panic(
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let dir = TempDir::new().unwrap();
        let values: Vec<u8> = pseudo_random(seed, 24).iter().map(|&v| v as u8).collect();
        let sources = [
            ("fvecs", { write_fvecs(dir.path().join("s.fvecs"), &[1.5; 12], 3).unwrap(); "s.fvecs" }),
            ("bvecs", { write_bvecs(dir.path().join("s.bvecs"), &values, 4).unwrap(); "s.bvecs" }),
            ("ivecs", { write_ivecs(dir.path().join("s.ivecs"), &[9; 12], 6).unwrap(); "s.ivecs" }),
            ("npy", { write_npy_u8(dir.path().join("s.npy"), &values, 6, 4).unwrap(); "s.npy" }),
            ("npy", { write_npy_i64(dir.path().join("t.npy"), &[3; 5]).unwrap(); "t.npy" }),
        ];
        for (ext, source) in sources {
            let mut bytes = std::fs::read(dir.path().join(source)).unwrap();
            for &(at, value) in &edits {
                let n = bytes.len();
                bytes[at % n] = value;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            read_everything(&write_bytes(&dir, &format!("m.{ext}"), &bytes));
        }
    }
}
