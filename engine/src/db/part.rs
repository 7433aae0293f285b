//! A *part* of the database: the rows of one segment file (memory-mapped) or of one
//! write-buffer chunk (on the heap), grouped by inverted list. Search, compaction, delete
//! lookups and verification see both through the same [`PartView`].

use std::collections::HashSet;
use std::sync::Arc;

/// Borrowed arrays of one part. Rows are ordered by inverted list: list `l` owns rows
/// `list_offsets[l]..list_offsets[l + 1]`.
#[derive(Clone, Copy, Debug)]
pub struct PartView<'a> {
    /// `nlist + 1` row offsets, non-decreasing, last = rows.
    pub list_offsets: &'a [u64],
    /// `rows × code_size` bytes of codes.
    pub codes: &'a [u8],
    /// Caller ids, one per row.
    pub ids: &'a [u64],
    /// Ids sorted ascending, and the row of each (for id lookups).
    pub sorted_ids: &'a [u64],
    pub sorted_rows: &'a [u64],
    /// Stored vectors for re-ranking (`rows × inner_dim`), with `,RFlat`.
    pub vectors: Option<&'a [f32]>,
    /// Row names: `rows + 1` offsets into `names`, when names were given.
    pub name_offsets: Option<&'a [u64]>,
    pub names: Option<&'a [u8]>,
    /// Bytes per code.
    pub code_size: usize,
}

impl<'a> PartView<'a> {
    /// Number of rows (deleted ones included).
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// Codes and ids of list `l` (empty when `l` is out of range).
    pub fn list(&self, l: usize) -> (&'a [u8], &'a [u64]) {
        if l + 1 >= self.list_offsets.len() {
            return (&[], &[]);
        }
        let (start, end) = (
            self.list_offsets[l] as usize,
            self.list_offsets[l + 1] as usize,
        );
        (
            &self.codes[start * self.code_size..end * self.code_size],
            &self.ids[start..end],
        )
    }

    /// The row holding `id`, if any.
    pub fn find_row(&self, id: u64) -> Option<usize> {
        self.sorted_ids
            .binary_search(&id)
            .ok()
            .map(|i| self.sorted_rows[i] as usize)
    }

    /// The stored vector of `row` (`dim` floats), with `,RFlat`.
    pub fn vector(&self, row: usize, dim: usize) -> Option<&'a [f32]> {
        self.vectors.and_then(|v| v.get(row * dim..(row + 1) * dim))
    }

    /// The name of `row`, when names were stored.
    pub fn name(&self, row: usize) -> Option<&'a str> {
        let offsets = self.name_offsets?;
        let names = self.names?;
        let (start, end) = (*offsets.get(row)? as usize, *offsets.get(row + 1)? as usize);
        std::str::from_utf8(names.get(start..end)?).ok()
    }
}

/// Owned arrays of a part, built in memory (an add's chunk, a compaction's output) and
/// written to a segment file by `write_part`.
#[derive(Clone, Debug, Default)]
pub struct OwnedPart {
    pub list_offsets: Vec<u64>,
    pub codes: Vec<u8>,
    pub ids: Vec<u64>,
    pub sorted_ids: Vec<u64>,
    pub sorted_rows: Vec<u64>,
    pub vectors: Option<Vec<f32>>,
    pub name_offsets: Option<Vec<u64>>,
    pub names: Option<Vec<u8>>,
    pub code_size: usize,
}

impl OwnedPart {
    /// Groups rows by list (a stable counting sort) into a part. `lists[i]` is the list
    /// of row `i`, `codes` holds `code_size` bytes per row, `vectors` `dim` floats per row.
    pub fn from_rows(
        nlist: usize,
        code_size: usize,
        lists: &[u32],
        codes: &[u8],
        ids: &[u64],
        vectors: Option<(&[f32], usize)>,
        names: Option<&[String]>,
    ) -> OwnedPart {
        let rows = ids.len();
        let mut list_offsets = vec![0u64; nlist + 1];
        for &l in lists {
            list_offsets[l as usize + 1] += 1;
        }
        for l in 0..nlist {
            list_offsets[l + 1] += list_offsets[l];
        }
        let mut next: Vec<u64> = list_offsets[..nlist].to_vec();
        let mut order = vec![0usize; rows];
        for (row, &l) in lists.iter().enumerate() {
            order[next[l as usize] as usize] = row;
            next[l as usize] += 1;
        }
        let mut part = OwnedPart {
            list_offsets,
            code_size,
            ..OwnedPart::default()
        };
        part.codes.reserve(rows * code_size);
        part.ids.reserve(rows);
        for &row in &order {
            part.codes
                .extend_from_slice(&codes[row * code_size..(row + 1) * code_size]);
            part.ids.push(ids[row]);
        }
        if let Some((v, dim)) = vectors {
            let mut out = Vec::with_capacity(rows * dim);
            for &row in &order {
                out.extend_from_slice(&v[row * dim..(row + 1) * dim]);
            }
            part.vectors = Some(out);
        }
        if let Some(names) = names {
            let mut offsets = Vec::with_capacity(rows + 1);
            let mut bytes = Vec::new();
            offsets.push(0);
            for &row in &order {
                bytes.extend_from_slice(names[row].as_bytes());
                offsets.push(bytes.len() as u64);
            }
            part.name_offsets = Some(offsets);
            part.names = Some(bytes);
        }
        part.index_ids();
        part
    }

    /// Rebuilds the sorted id index from `ids`.
    pub fn index_ids(&mut self) {
        let mut pairs: Vec<(u64, u64)> = self
            .ids
            .iter()
            .enumerate()
            .map(|(row, &id)| (id, row as u64))
            .collect();
        pairs.sort_unstable();
        self.sorted_ids = pairs.iter().map(|p| p.0).collect();
        self.sorted_rows = pairs.iter().map(|p| p.1).collect();
    }

    /// A borrowed view.
    pub fn view(&self) -> PartView<'_> {
        PartView {
            list_offsets: &self.list_offsets,
            codes: &self.codes,
            ids: &self.ids,
            sorted_ids: &self.sorted_ids,
            sorted_rows: &self.sorted_rows,
            vectors: self.vectors.as_deref(),
            name_offsets: self.name_offsets.as_deref(),
            names: self.names.as_deref(),
            code_size: self.code_size,
        }
    }
}

/// Concatenates the live rows of `parts` list by list (no re-encoding): the output of a
/// compaction or of a buffer flush. `is_deleted(part, row)` says which rows to drop.
pub fn merge_parts(
    parts: &[PartView<'_>],
    nlist: usize,
    code_size: usize,
    dim: usize,
    is_deleted: &dyn Fn(usize, usize) -> bool,
) -> OwnedPart {
    let with_vectors = !parts.is_empty() && parts.iter().all(|p| p.vectors.is_some());
    let with_names = parts.iter().any(|p| p.names.is_some());
    let mut out = OwnedPart {
        code_size,
        ..OwnedPart::default()
    };
    let mut vectors = Vec::new();
    let mut name_offsets = vec![0u64];
    let mut names = Vec::new();
    out.list_offsets.push(0);
    for l in 0..nlist {
        for (p, part) in parts.iter().enumerate() {
            if l + 1 >= part.list_offsets.len() {
                continue;
            }
            let (start, end) = (
                part.list_offsets[l] as usize,
                part.list_offsets[l + 1] as usize,
            );
            for row in start..end {
                if is_deleted(p, row) {
                    continue;
                }
                out.codes
                    .extend_from_slice(&part.codes[row * code_size..(row + 1) * code_size]);
                out.ids.push(part.ids[row]);
                if with_vectors && let Some(v) = part.vector(row, dim) {
                    vectors.extend_from_slice(v);
                }
                if with_names {
                    names.extend_from_slice(part.name(row).unwrap_or("").as_bytes());
                    name_offsets.push(names.len() as u64);
                }
            }
        }
        out.list_offsets.push(out.ids.len() as u64);
    }
    if with_vectors {
        out.vectors = Some(vectors);
    }
    if with_names {
        out.name_offsets = Some(name_offsets);
        out.names = Some(names);
    }
    out.index_ids();
    out
}

/// The ids of a part's deleted rows, for filtering during the scan.
pub type Exclusions = Arc<HashSet<u64>>;
