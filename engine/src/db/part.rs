//! A *part* of the database: the rows of one segment file (memory-mapped) or of one
//! write-buffer chunk (on the heap), grouped by inverted list. Search, compaction, delete
//! lookups and verification see both through the same [`PartView`].

use std::collections::HashSet;
use std::sync::Arc;

use vladdb_codecs::index::ListLayout;

use crate::error::Result;

/// Borrowed arrays of one part. Rows are ordered by inverted list: list `l` owns rows
/// `list_offsets[l]..list_offsets[l + 1]`.
#[derive(Clone, Copy, Debug)]
pub struct PartView<'a> {
    /// `nlist + 1` row offsets, non-decreasing, last = rows.
    pub list_offsets: &'a [u64],
    /// `nlist + 1` byte offsets of each list's codes in `codes` (derived from
    /// `list_offsets` and `layout`, never stored).
    pub code_offsets: &'a [u64],
    /// The codes of every list, one list after the other, each in `layout`.
    pub codes: &'a [u8],
    /// Caller ids, one per row.
    pub ids: &'a [u64],
    /// Ids sorted ascending, and the row of each (for id lookups).
    pub sorted_ids: &'a [u64],
    pub sorted_rows: &'a [u64],
    /// Stored vectors for re-ranking (`rows × inner_dim`), with `,RFlat` (f32) or
    /// `,RF16` (IEEE half-precision bits).
    pub vectors: Option<StoredVectors<'a>>,
    /// Row names: `rows + 1` offsets into `names`, when names were given.
    pub name_offsets: Option<&'a [u64]>,
    pub names: Option<&'a [u8]>,
    /// How each list's codes are laid out.
    pub layout: ListLayout,
}

/// Re-ranking vectors of a part, in the precision the spec chose.
#[derive(Clone, Copy, Debug)]
pub enum StoredVectors<'a> {
    /// `RFlat`.
    F32(&'a [f32]),
    /// `RF16`: half-precision bit patterns.
    F16(&'a [u16]),
}

impl<'a> StoredVectors<'a> {
    /// Number of stored values.
    pub fn len(&self) -> usize {
        match self {
            StoredVectors::F32(v) => v.len(),
            StoredVectors::F16(v) => v.len(),
        }
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Squared L2 distance between `query` and stored row `row` (of `query.len()`
    /// values), `None` when out of range.
    pub fn distance(&self, row: usize, query: &[f32]) -> Option<f32> {
        let d = query.len();
        match self {
            StoredVectors::F32(v) => v
                .get(row * d..(row + 1) * d)
                .map(|x| vladdb_codecs::distance::l2_sqr(query, x)),
            StoredVectors::F16(v) => v
                .get(row * d..(row + 1) * d)
                .map(|x| vladdb_codecs::half::l2_sqr_f16(query, x)),
        }
    }

    /// Appends stored row `row` (of `dim`) to `out` in its own precision.
    fn copy_row(&self, row: usize, dim: usize, out: &mut OwnedVectors) {
        match (self, out) {
            (StoredVectors::F32(v), OwnedVectors::F32(o)) => {
                o.extend_from_slice(&v[row * dim..(row + 1) * dim])
            }
            (StoredVectors::F16(v), OwnedVectors::F16(o)) => {
                o.extend_from_slice(&v[row * dim..(row + 1) * dim])
            }
            (StoredVectors::F32(v), OwnedVectors::F16(o)) => o.extend(
                v[row * dim..(row + 1) * dim]
                    .iter()
                    .map(|&x| vladdb_codecs::half::f32_to_f16(x)),
            ),
            (StoredVectors::F16(v), OwnedVectors::F32(o)) => o.extend(
                v[row * dim..(row + 1) * dim]
                    .iter()
                    .map(|&x| vladdb_codecs::half::f16_to_f32(x)),
            ),
        }
    }
}

/// Owned re-ranking vectors.
#[derive(Clone, Debug)]
pub enum OwnedVectors {
    /// `RFlat`.
    F32(Vec<f32>),
    /// `RF16`.
    F16(Vec<u16>),
}

impl OwnedVectors {
    /// An empty store of the given precision (`f16` for `RF16`).
    pub fn empty(f16: bool) -> Self {
        if f16 {
            OwnedVectors::F16(Vec::new())
        } else {
            OwnedVectors::F32(Vec::new())
        }
    }

    /// Converts f32 rows to the store's precision.
    pub fn from_f32(values: &[f32], f16: bool) -> Self {
        if f16 {
            OwnedVectors::F16(
                values
                    .iter()
                    .map(|&x| vladdb_codecs::half::f32_to_f16(x))
                    .collect(),
            )
        } else {
            OwnedVectors::F32(values.to_vec())
        }
    }

    /// A borrowed view.
    pub fn view(&self) -> StoredVectors<'_> {
        match self {
            OwnedVectors::F32(v) => StoredVectors::F32(v),
            OwnedVectors::F16(v) => StoredVectors::F16(v),
        }
    }
}

impl<'a> PartView<'a> {
    /// Number of rows (deleted ones included).
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// Codes (in the part's layout) and ids of list `l` (empty when `l` is out of range).
    pub fn list(&self, l: usize) -> (&'a [u8], &'a [u64]) {
        if l + 1 >= self.list_offsets.len() || l + 1 >= self.code_offsets.len() {
            return (&[], &[]);
        }
        let (start, end) = (
            self.list_offsets[l] as usize,
            self.list_offsets[l + 1] as usize,
        );
        let (cs, ce) = (
            self.code_offsets[l] as usize,
            self.code_offsets[l + 1] as usize,
        );
        (&self.codes[cs..ce], &self.ids[start..end])
    }

    /// The row holding `id`, if any.
    pub fn find_row(&self, id: u64) -> Option<usize> {
        self.sorted_ids
            .binary_search(&id)
            .ok()
            .map(|i| self.sorted_rows[i] as usize)
    }

    /// Squared L2 distance from `query` to the stored vector of `row` (`RFlat`/`RF16`).
    pub fn rerank_distance(&self, row: usize, query: &[f32]) -> Option<f32> {
        self.vectors.and_then(|v| v.distance(row, query))
    }

    /// Hints the CPU to load the stored vector of `row` (of `dim` values); a no-op
    /// without stored vectors or out of range.
    pub fn prefetch_vector(&self, row: usize, dim: usize) {
        match self.vectors {
            Some(StoredVectors::F32(v)) => {
                if let Some(x) = v.get(row * dim..(row + 1) * dim) {
                    vladdb_codecs::ivf::prefetch_slice(x);
                }
            }
            Some(StoredVectors::F16(v)) => {
                if let Some(x) = v.get(row * dim..(row + 1) * dim) {
                    vladdb_codecs::ivf::prefetch_slice(x);
                }
            }
            None => {}
        }
    }

    /// The name of `row`, when names were stored and it is not empty (a part that merges
    /// named and unnamed rows stores the unnamed ones as empty names).
    pub fn name(&self, row: usize) -> Option<&'a str> {
        let offsets = self.name_offsets?;
        let names = self.names?;
        let (start, end) = (*offsets.get(row)? as usize, *offsets.get(row + 1)? as usize);
        std::str::from_utf8(names.get(start..end)?)
            .ok()
            .filter(|n| !n.is_empty())
    }
}

/// Owned arrays of a part, built in memory (an add's chunk, a compaction's output) and
/// written to a segment file by `write_part`.
#[derive(Clone, Debug)]
pub struct OwnedPart {
    pub list_offsets: Vec<u64>,
    pub code_offsets: Vec<u64>,
    pub codes: Vec<u8>,
    pub ids: Vec<u64>,
    pub sorted_ids: Vec<u64>,
    pub sorted_rows: Vec<u64>,
    pub vectors: Option<OwnedVectors>,
    pub name_offsets: Option<Vec<u64>>,
    pub names: Option<Vec<u8>>,
    pub layout: ListLayout,
}

impl Default for OwnedPart {
    fn default() -> Self {
        OwnedPart {
            list_offsets: Vec::new(),
            code_offsets: Vec::new(),
            codes: Vec::new(),
            ids: Vec::new(),
            sorted_ids: Vec::new(),
            sorted_rows: Vec::new(),
            vectors: None,
            name_offsets: None,
            names: None,
            layout: ListLayout::Rows { code_size: 0 },
        }
    }
}

impl OwnedPart {
    /// Groups rows by list (a stable counting sort) into a part. `lists[i]` is the list
    /// of row `i`, `codes` holds `layout.code_size()` bytes per row (row form), `vectors`
    /// `dim` values per row.
    pub fn from_rows(
        nlist: usize,
        layout: ListLayout,
        lists: &[u32],
        codes: &[u8],
        ids: &[u64],
        vectors: Option<(&OwnedVectors, usize)>,
        names: Option<&[String]>,
    ) -> Result<OwnedPart> {
        let code_size = layout.code_size();
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
        let mut row_codes = Vec::with_capacity(rows * code_size);
        let mut part = OwnedPart {
            layout,
            ..OwnedPart::default()
        };
        part.ids.reserve(rows);
        for &row in &order {
            row_codes.extend_from_slice(&codes[row * code_size..(row + 1) * code_size]);
            part.ids.push(ids[row]);
        }
        part.codes = pack_lists(layout, &list_offsets, &row_codes)?;
        part.code_offsets = layout.byte_offsets(&list_offsets);
        part.list_offsets = list_offsets;
        if let Some((v, dim)) = vectors {
            let src = v.view();
            let mut out = match v {
                OwnedVectors::F32(_) => OwnedVectors::F32(Vec::with_capacity(rows * dim)),
                OwnedVectors::F16(_) => OwnedVectors::F16(Vec::with_capacity(rows * dim)),
            };
            for &row in &order {
                src.copy_row(row, dim, &mut out);
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
        Ok(part)
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
            code_offsets: &self.code_offsets,
            codes: &self.codes,
            ids: &self.ids,
            sorted_ids: &self.sorted_ids,
            sorted_rows: &self.sorted_rows,
            vectors: self.vectors.as_ref().map(OwnedVectors::view),
            name_offsets: self.name_offsets.as_deref(),
            names: self.names.as_deref(),
            layout: self.layout,
        }
    }
}

/// Packs row-form codes grouped by list (`row_offsets`) into `layout`, list by list.
fn pack_lists(layout: ListLayout, row_offsets: &[u64], row_codes: &[u8]) -> Result<Vec<u8>> {
    if layout.is_rows() {
        return Ok(row_codes.to_vec());
    }
    let cs = layout.code_size();
    let mut out = Vec::with_capacity(
        layout
            .byte_offsets(row_offsets)
            .last()
            .copied()
            .unwrap_or(0) as usize,
    );
    for w in row_offsets.windows(2) {
        let (start, end) = (w[0] as usize, w[1] as usize);
        layout.pack_into(&row_codes[start * cs..end * cs], end - start, &mut out)?;
    }
    Ok(out)
}

/// Concatenates the live rows of `parts` list by list (no re-encoding; lists in a
/// blocked layout are unpacked and packed again): the output of a compaction or of a
/// buffer flush. `is_deleted(part, row)` says which rows to drop. Re-ranking vectors
/// are kept when every part has them, converted to `f16` when `vectors_f16`.
pub fn merge_parts(
    parts: &[PartView<'_>],
    nlist: usize,
    layout: ListLayout,
    dim: usize,
    vectors_f16: bool,
    is_deleted: &dyn Fn(usize, usize) -> bool,
) -> Result<OwnedPart> {
    let with_vectors = !parts.is_empty() && parts.iter().all(|p| p.vectors.is_some());
    let with_names = parts.iter().any(|p| p.names.is_some());
    let code_size = layout.code_size();
    let mut out = OwnedPart {
        layout,
        ..OwnedPart::default()
    };
    let mut row_codes = Vec::new();
    let mut vectors = OwnedVectors::empty(vectors_f16);
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
            if start == end {
                continue;
            }
            let (bytes, _) = part.list(l);
            let list_codes = part.layout.unpack(bytes, end - start)?;
            for row in start..end {
                if is_deleted(p, row) {
                    continue;
                }
                let i = row - start;
                row_codes.extend_from_slice(&list_codes[i * code_size..(i + 1) * code_size]);
                out.ids.push(part.ids[row]);
                if with_vectors && let Some(v) = part.vectors {
                    v.copy_row(row, dim, &mut vectors);
                }
                if with_names {
                    names.extend_from_slice(part.name(row).unwrap_or("").as_bytes());
                    name_offsets.push(names.len() as u64);
                }
            }
        }
        out.list_offsets.push(out.ids.len() as u64);
    }
    out.codes = pack_lists(layout, &out.list_offsets, &row_codes)?;
    out.code_offsets = layout.byte_offsets(&out.list_offsets);
    if with_vectors {
        out.vectors = Some(vectors);
    }
    if with_names {
        out.name_offsets = Some(name_offsets);
        out.names = Some(names);
    }
    out.index_ids();
    Ok(out)
}

/// The ids of a part's deleted rows, for filtering during the scan.
pub type Exclusions = Arc<HashSet<u64>>;
