//! Shared list passes for batches: when several queries of a batch scan the same inverted
//! list of an IVF-PQ index, the query-independent half of the list's ADC table is built
//! once for all of them.
//!
//! For a query `q`, a list with centroid `c` and a sub-centroid `y`,
//! `‖q − c − y‖² = ‖q − c‖² + (‖y‖² + 2⟨c − μ, y⟩) − 2⟨q − μ, y⟩` for any origin `μ`. The
//! middle term depends on the list only ([`ListPass`], one `m × ksub` table per list and
//! pass), the last on the query only (computed once per query, whatever the number of
//! lists it probes, and kept in half precision), and the first is the coarse distance the
//! probe already knows. `μ` is the mean of the coarse centroids: the two terms then stay
//! small however far the data lies from the origin (with `μ = 0` they grow with the data's
//! offset and cancel, and half precision lost 0.014 recall@1 on data shifted by 1,000). A query's table for the list is then one
//! element-wise sum instead of `ksub · dim` multiply-adds. This is the split of FAISS's
//! precomputed tables, but without storing `nlist` tables: a batch of `B` queries probing
//! `nprobe` lists of `nlist` shares each list among about `B · nprobe / nlist` queries, so
//! the list term is worth building on the fly once that is above one.

use super::layout::ListLayout;
use super::model::{IndexModel, Quantizer, QueryContext};
use crate::CodecError;
use crate::adc;
use crate::adc::half_terms;
use crate::distance::l2_sqr;
use crate::error::Result;
use crate::pq::ProductQuantizer;
use crate::spec::QuantizerSpec;
use crate::topk::TopK;

/// The list term of one list, shared by the queries that scan it in a pass.
#[derive(Debug, Clone, Default)]
pub struct ListPass {
    list: Option<usize>,
    /// `‖y‖² + 2⟨c − μ, y⟩` for every sub-centroid `y` (LUT layout).
    terms: Vec<f32>,
    /// Scratch: the table of the query being scanned.
    table: Vec<f32>,
    /// Scratch: a centroid or query minus `μ`.
    shifted: Vec<f32>,
}

impl IndexModel {
    /// True when this model can scan lists in shared passes ([`IndexModel::begin_list_pass`]):
    /// IVF with (non-fast-scan) PQ codes and no stored per-list tables.
    pub fn shares_list_terms(&self) -> bool {
        self.coarse.is_some()
            && self.precomputed.is_none()
            && matches!(self.quantizer, Quantizer::Pq(_))
            && matches!(self.spec.quantizer, QuantizerSpec::Pq { .. })
    }

    /// Makes `pass` hold the list term of list `list_no` (nothing to do when it already
    /// does). Errors when the model does not share list terms or the list is out of range.
    pub fn begin_list_pass(&self, pass: &mut ListPass, list_no: usize) -> Result<()> {
        let (Some(cq), Quantizer::Pq(pq)) = (&self.coarse, &self.quantizer) else {
            return Err(crate::CodecError::InvalidParameter(
                "shared list passes need an IVF-PQ model".into(),
            ));
        };
        if list_no >= cq.nlist() {
            return Err(crate::CodecError::InvalidParameter(format!(
                "list {list_no} out of range ({} lists)",
                cq.nlist()
            )));
        }
        if pass.list == Some(list_no) {
            return Ok(());
        }
        pass.list = None;
        pass.terms.resize(pq.lut_len(), 0.0);
        shift_into(cq.centroid(list_no), self.pass_center(), &mut pass.shifted);
        crate::ivf::list_term_into(pq, &pass.shifted, &self.pq_norms, &mut pass.terms)?;
        pass.list = Some(list_no);
        Ok(())
    }

    /// [`IndexModel::scan_list`] for a list prepared in `pass`: the query's table is the
    /// pass's list term plus the query's own term (computed on its first list).
    pub fn scan_list_in_pass(
        &self,
        ctx: &mut QueryContext,
        pass: &mut ListPass,
        list_no: usize,
        codes: &[u8],
        ids: &[u64],
        top: &mut TopK,
    ) -> Result<()> {
        let (Some(cq), Quantizer::Pq(pq), Some(list)) = (&self.coarse, &self.quantizer, pass.list)
        else {
            return self.scan_list(ctx, list_no, codes, ids, top);
        };
        if list != list_no || !self.shares_list_terms() {
            return self.scan_list(ctx, list_no, codes, ids, top);
        }
        if !self.check_list_args(list_no, codes, ids)? {
            return Ok(());
        }
        pass.table.resize(pq.lut_len(), 0.0);
        if !ctx.pass_term_ready {
            // Computed in the pass's scratch, kept in half precision: with a thousand
            // queries in flight their terms live outside the core's caches, and this
            // halves what each of their lists reads.
            shift_into(&ctx.query, self.pass_center(), &mut pass.shifted);
            pq.compute_ip_lut_into(&pass.shifted, -2.0, &mut pass.table)?;
            half_terms::encode(&pass.table, &mut ctx.pass_term);
            ctx.pass_term_ready = true;
        }
        half_terms::add_scaled(&pass.terms, &ctx.pass_term, &mut pass.table);
        let bias = match ctx.probes.iter().find(|p| p.0 as usize == list_no) {
            Some(p) => p.1,
            None => l2_sqr(&ctx.query, cq.centroid(list_no)),
        };
        self.scan_pq_codes(pq, &pass.table, bias, codes, ids, top)
    }
}

/// `out = x − origin`.
fn shift_into(x: &[f32], origin: &[f32], out: &mut Vec<f32>) {
    out.clear();
    out.extend(x.iter().zip(origin).map(|(a, b)| a - b));
}

impl IndexModel {
    /// `μ`, the origin of the split (module doc): the mean of the coarse centroids.
    fn pass_center(&self) -> &[f32] {
        self.pass_center.get_or_init(|| match &self.coarse {
            Some(cq) => crate::exact::mean_row(&cq.kmeans.centroids, cq.dim()),
            None => Vec::new(),
        })
    }
}

/// Helpers shared by [`IndexModel::scan_list`] and the shared passes.
impl IndexModel {
    /// Validates a list scan's arguments; `false` when there is nothing to scan.
    pub(super) fn check_list_args(
        &self,
        list_no: usize,
        codes: &[u8],
        ids: &[u64],
    ) -> Result<bool> {
        if list_no >= self.nlist() {
            return Err(CodecError::InvalidParameter(format!(
                "list {list_no} out of range ({} lists)",
                self.nlist()
            )));
        }
        let want = self.layout().list_bytes(ids.len());
        if codes.len() != want {
            return Err(CodecError::DimensionMismatch {
                expected: want,
                got: codes.len(),
            });
        }
        Ok(!ids.is_empty())
    }

    /// Scores 8-bit (or other non-fast-scan) PQ codes with table `lut` plus `bias`.
    pub(super) fn scan_pq_codes(
        &self,
        pq: &ProductQuantizer,
        lut: &[f32],
        bias: f32,
        codes: &[u8],
        ids: &[u64],
        top: &mut TopK,
    ) -> Result<()> {
        if matches!(self.layout(), ListLayout::Blocked8 { .. }) {
            adc::blocked::scan(lut, pq.m, codes, ids.len(), ids, bias, top)
        } else {
            let scanner = self.scanner.unwrap_or_else(|| adc::scanner(pq.m, pq.ksub));
            scanner.scan(lut, codes, ids, bias, top)
        }
    }
}
