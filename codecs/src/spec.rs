//! Index spec strings (FAISS `index_factory`-compatible where they overlap): a comma-
//! separated pipeline such as `PCAR64,IVF4096,PQ16,RFlat`. The grammar is documented in
//! `docs/specs.md`; this module parses it into an [`IndexSpec`] with one-line errors that
//! name the offending token.

use std::fmt;

use crate::error::{CodecError, Result};

/// An optional PCA stage in front of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcaStage {
    /// Output dimension.
    pub d_out: usize,
    /// Whitening (`PCAW`): eigen power −0.5.
    pub whiten: bool,
    /// Random orthogonal rotation after the projection (`PCAR`).
    pub rotate: bool,
}

/// How vectors are stored inside the index (the last quantizer stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantizerSpec {
    /// Uncompressed `f32` vectors.
    Flat,
    /// Product quantization with `m` sub-quantizers of `nbits` bits each.
    Pq { m: usize, nbits: u32 },
    /// 4-bit product quantization with `m` sub-quantizers, codes stored in blocks of 32
    /// vectors and scanned with in-register table look-ups (`PQ<m>x4fs`).
    FastScan { m: usize },
}

/// What a trailing refine stage stores to re-rank candidates exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefineSpec {
    /// `RFlat`: the vectors as `f32`.
    Flat,
    /// `RF16`: the vectors as IEEE half precision (half the bytes, ~3 significant digits).
    F16,
}

/// A parsed index spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Optional PCA pre-transform.
    pub pca: Option<PcaStage>,
    /// `L2norm` after the pre-transform: every vector (and query) is scaled to unit length.
    pub l2norm: bool,
    /// Number of inverted lists (`IVF<nlist>`), or `None` for an exhaustive index.
    pub ivf: Option<usize>,
    /// The vector quantizer.
    pub quantizer: QuantizerSpec,
    /// Trailing `RFlat` / `RF16`: keep the (transformed) vectors to re-rank candidates.
    pub refine: Option<RefineSpec>,
}

fn err(spec: &str, reason: impl Into<String>) -> CodecError {
    CodecError::Spec {
        spec: clip(spec),
        reason: reason.into(),
    }
}

/// A token quoted in an error message: `Debug`-quoted and clipped like [`clip`].
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", clip(self.0))
    }
}

/// A spec (or token) as quoted in an error: at most 80 characters, so that a runaway
/// argument still gives a one-line message.
pub fn clip(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Parses a positive decimal number; `what` names it in errors.
fn number(spec: &str, token: &str, digits: &str, what: &str) -> Result<usize> {
    let quoted = Quoted(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            spec,
            format!("token {quoted}: expected a number of {what}"),
        ));
    }
    let v: usize = digits
        .parse()
        .map_err(|_| err(spec, format!("token {quoted}: {what} too large")))?;
    if v == 0 {
        return Err(err(
            spec,
            format!("token {quoted}: {what} must be at least 1"),
        ));
    }
    Ok(v)
}

fn parse_pca(spec: &str, token: &str) -> Result<PcaStage> {
    let mut rest = &token[3..];
    let whiten = rest.starts_with('W');
    if whiten {
        rest = &rest[1..];
    }
    let rotate = rest.starts_with('R');
    if rotate {
        rest = &rest[1..];
    }
    let d_out = number(spec, token, rest, "output dimensions")?;
    Ok(PcaStage {
        d_out,
        whiten,
        rotate,
    })
}

fn parse_pq(spec: &str, token: &str) -> Result<QuantizerSpec> {
    let quoted = Quoted(token);
    let body = &token[2..];
    if let Some(fs) = body.strip_suffix("fs") {
        let m_str = match fs.split_once('x') {
            Some((m, "4")) => m,
            None => fs,
            Some(_) => {
                return Err(err(
                    spec,
                    format!("token {quoted}: fast-scan PQ codes have 4 bits (PQ<m>x4fs)"),
                ));
            }
        };
        let m = number(spec, token, m_str, "sub-quantizers")?;
        return Ok(QuantizerSpec::FastScan { m });
    }
    let (m_str, nbits) = match body.split_once('x') {
        Some((m, b)) => {
            let nbits = number(spec, token, b, "bits per sub-quantizer")?;
            if !(1..=8).contains(&nbits) {
                return Err(err(
                    spec,
                    format!("token {quoted}: nbits = {nbits} is out of range (1..=8)"),
                ));
            }
            (m, nbits as u32)
        }
        None => (body, 8),
    };
    let m = number(spec, token, m_str, "sub-quantizers")?;
    Ok(QuantizerSpec::Pq { m, nbits })
}

impl IndexSpec {
    /// Parses a spec string; whitespace around tokens is ignored.
    ///
    /// Grammar: `[PCA[W][R]<d>,] [L2norm,] [IVF<nlist>,] (Flat | PQ<m>[x<nbits>] |
    /// PQ<m>x4fs) [,RFlat | ,RF16]`.
    pub fn parse(spec: &str) -> Result<IndexSpec> {
        let tokens: Vec<&str> = spec.split(',').map(str::trim).collect();
        if tokens.iter().all(|t| t.is_empty()) {
            return Err(err(spec, "empty spec"));
        }
        let mut pca = None;
        let mut l2norm = false;
        let mut ivf = None;
        let mut quantizer = None;
        let mut refine = None;
        for (pos, &token) in tokens.iter().enumerate() {
            let quoted = Quoted(token);
            if token.is_empty() {
                return Err(err(spec, format!("empty token at position {}", pos + 1)));
            }
            if refine.is_some() {
                return Err(err(
                    spec,
                    format!("token {quoted} after the refine stage (it must be last)"),
                ));
            }
            if token.starts_with("PCA") {
                if pos != 0 {
                    return Err(err(
                        spec,
                        format!("token {quoted}: PCA must be the first stage"),
                    ));
                }
                pca = Some(parse_pca(spec, token)?);
            } else if token == "L2norm" {
                if l2norm || ivf.is_some() || quantizer.is_some() {
                    return Err(err(
                        spec,
                        format!(
                            "token {quoted}: L2norm must come once, before IVF and the quantizer"
                        ),
                    ));
                }
                l2norm = true;
            } else if let Some(n) = token.strip_prefix("IVF") {
                if ivf.is_some() || quantizer.is_some() {
                    return Err(err(
                        spec,
                        format!("token {quoted}: IVF must come once, before the quantizer"),
                    ));
                }
                ivf = Some(number(spec, token, n, "inverted lists")?);
            } else if token == "Flat" || token.starts_with("PQ") {
                if quantizer.is_some() {
                    return Err(err(spec, format!("token {quoted}: a second quantizer")));
                }
                quantizer = Some(if token == "Flat" {
                    QuantizerSpec::Flat
                } else {
                    parse_pq(spec, token)?
                });
            } else if matches!(token, "RFlat" | "Refine(Flat)" | "RF16") {
                if quantizer.is_none() {
                    return Err(err(spec, format!("token {quoted} before any quantizer")));
                }
                refine = Some(if token == "RF16" {
                    RefineSpec::F16
                } else {
                    RefineSpec::Flat
                });
            } else if ["VLAD", "FV", "BOF"].iter().any(|p| token.starts_with(p)) {
                return Err(err(
                    spec,
                    format!(
                        "token {quoted}: an encoder stage (VLAD, FV, BOF) must be the first \
                         stage, and there is only one"
                    ),
                ));
            } else if token.starts_with("OPQ") {
                return Err(err(
                    spec,
                    format!(
                        "token {quoted}: OPQ is not supported (PCAR<d> / PCAWR<d> rotate \
                         before PQ)"
                    ),
                ));
            } else {
                return Err(err(
                    spec,
                    format!(
                        "unknown token {quoted} (expected PCA<d>, L2norm, IVF<n>, Flat, \
                         PQ<m>[x<bits>], PQ<m>x4fs, RFlat or RF16)"
                    ),
                ));
            }
        }
        let quantizer =
            quantizer.ok_or_else(|| err(spec, "missing the quantizer (Flat or PQ<m>)"))?;
        Ok(IndexSpec {
            pca,
            l2norm,
            ivf,
            quantizer,
            refine,
        })
    }

    /// True when the spec stores vectors for re-ranking (`RFlat` or `RF16`).
    pub fn stores_vectors(&self) -> bool {
        self.refine.is_some()
    }

    /// Dimension the quantizers see (after PCA), given the input dimension.
    pub fn inner_dim(&self, dim: usize) -> usize {
        self.pca.map_or(dim, |p| p.d_out)
    }
}

impl fmt::Display for IndexSpec {
    /// The canonical form (`PQ16` is printed as `PQ16x8`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = self.pca {
            parts.push(format!(
                "PCA{}{}{}",
                if p.whiten { "W" } else { "" },
                if p.rotate { "R" } else { "" },
                p.d_out
            ));
        }
        if self.l2norm {
            parts.push("L2norm".to_string());
        }
        if let Some(n) = self.ivf {
            parts.push(format!("IVF{n}"));
        }
        parts.push(match self.quantizer {
            QuantizerSpec::Flat => "Flat".to_string(),
            QuantizerSpec::Pq { m, nbits } => format!("PQ{m}x{nbits}"),
            QuantizerSpec::FastScan { m } => format!("PQ{m}x4fs"),
        });
        match self.refine {
            Some(RefineSpec::Flat) => parts.push("RFlat".to_string()),
            Some(RefineSpec::F16) => parts.push("RF16".to_string()),
            None => {}
        }
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> IndexSpec {
        IndexSpec::parse(s).unwrap()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(ok("Flat").quantizer, QuantizerSpec::Flat);
        assert_eq!(ok("PQ16"), ok("PQ16x8"));
        assert_eq!(ok("PQ16").quantizer, QuantizerSpec::Pq { m: 16, nbits: 8 });
        let s = ok("IVF4096,PQ16");
        assert_eq!((s.ivf, s.pca), (Some(4096), None));
        assert_eq!(ok("IVF4096,Flat").quantizer, QuantizerSpec::Flat);
        let s = ok("PCA64,IVF1024,PQ16");
        assert_eq!(
            s.pca,
            Some(PcaStage {
                d_out: 64,
                whiten: false,
                rotate: false
            })
        );
        assert_eq!(
            ok("PCAW128,Flat").pca.map(|p| (p.whiten, p.rotate)),
            Some((true, false))
        );
        assert_eq!(
            ok("PCAR64,PQ8").pca.map(|p| (p.whiten, p.rotate)),
            Some((false, true))
        );
        assert_eq!(
            ok("PCAWR128,PQ8x4").pca.map(|p| (p.whiten, p.rotate)),
            Some((true, true))
        );
        assert_eq!(ok("IVF256, PQ8 ,RFlat").refine, Some(RefineSpec::Flat));
        assert_eq!(ok("PQ8,RF16").refine, Some(RefineSpec::F16));
        assert_eq!(ok("PQ32x4fs").quantizer, QuantizerSpec::FastScan { m: 32 });
        assert_eq!(ok("IVF64,PQ32fs"), ok("IVF64,PQ32x4fs"));
        assert!(ok("PCAWR256,L2norm,PQ16").l2norm);
        assert!(ok("L2norm,IVF16,Flat").l2norm);
        for s in [
            "PCAWR128,IVF1024,PQ16x8,RFlat",
            "Flat",
            "IVF64,Flat",
            "PCAR64,L2norm,IVF4096,PQ32x4fs,RF16",
        ] {
            assert_eq!(ok(s).to_string(), s);
        }
    }

    #[test]
    fn errors_name_the_bad_token() {
        for (s, needle) in [
            ("", "empty"),
            ("IVF4096,PQ16,Bogus", "\"Bogus\""),
            ("PQ", "\"PQ\""),
            ("PQ16x9", "out of range"),
            ("PQ0", "at least 1"),
            ("IVFabc,PQ16", "\"IVFabc\""),
            ("IVF16", "missing"),
            ("PQ16,IVF16", "\"IVF16\""),
            ("IVF16,PCA8,Flat", "\"PCA8\""),
            ("PQ8,RFlat,Flat", "\"Flat\""),
            ("PQ32x8fs", "4 bits"),
            ("PQ0fs", "at least 1"),
            ("IVF16,L2norm,Flat", "\"L2norm\""),
            ("PQ8,RF16,RFlat", "\"RFlat\""),
            ("VLAD64,PQ16", "\"VLAD64\""),
            ("Flat,FV64", "must be the first stage"),
            ("OPQ16,PQ16", "PCAWR"),
            ("PQ8,,Flat", "position 2"),
        ] {
            let e = IndexSpec::parse(s).unwrap_err().to_string();
            assert!(e.contains(needle), "{s:?}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn long_specs_and_tokens_are_clipped_in_errors() {
        let token = format!("PQ{}", "9".repeat(5000));
        let e = IndexSpec::parse(&format!("IVF16,{token}"))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300, "{} characters", e.len());
        assert!(e.contains("too large") && e.contains('…'), "{e}");
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"é".repeat(81)), format!("{}…", "é".repeat(80)));
    }
}
