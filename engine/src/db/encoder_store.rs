//! Storing a trained local-descriptor encoder (VLAD, Fisher, BoF) in the model file: its
//! canonical spec token (which fixes every option) plus its arrays as f32 sections
//! (`enc_centroids`, `enc_rotations` for local coordinate systems, `enc_idf`, `gmm_weights`, `gmm_means`,
//! `gmm_vars`).

use std::sync::Arc;

use vladdb_codecs::encode::{
    BofEncoder, BofParams, DiagGmm, EncoderKind, FisherEncoder, FisherParams, SetEncoder,
    VladEncoder, VladParams, parse_encoder,
};

use crate::error::{Error, Result};

/// Named f32 arrays of a stored encoder.
pub type EncoderArrays<'a> = Vec<(&'static str, &'a [f32])>;

/// The encoder's token and its named arrays.
pub fn encoder_sections(enc: &dyn SetEncoder) -> Result<(String, EncoderArrays<'_>)> {
    let any = enc.as_any();
    let sections: Vec<(&'static str, &[f32])> = if let Some(v) = any.downcast_ref::<VladEncoder>() {
        let mut s = vec![("enc_centroids", v.centroids.as_slice())];
        if !v.local_rotations().is_empty() {
            s.push(("enc_rotations", v.local_rotations()));
        }
        s
    } else if let Some(f) = any.downcast_ref::<FisherEncoder>() {
        vec![
            ("gmm_weights", f.gmm.weights.as_slice()),
            ("gmm_means", f.gmm.means.as_slice()),
            ("gmm_vars", f.gmm.variances.as_slice()),
        ]
    } else if let Some(b) = any.downcast_ref::<BofEncoder>() {
        vec![
            ("enc_centroids", b.centroids.as_slice()),
            ("enc_idf", b.idf.as_slice()),
        ]
    } else {
        return Err(Error::InvalidArgument(format!(
            "cannot store encoder {}: unknown kind",
            enc.spec_token()
        )));
    };
    Ok((enc.spec_token(), sections))
}

/// Rebuilds an encoder from its token and arrays (`stored(name)` returns a stored array,
/// `None` when there is none).
///
/// A VLAD encoder has local coordinate systems exactly when `enc_rotations` is stored:
/// its token says so too (`VLAD64` with them, `VLAD64_nolcs` without) except in files
/// written before they became the default, where a plain `VLAD64` had none.
pub fn load_encoder(
    token: &str,
    dim_in: usize,
    stored: &dyn Fn(&str) -> Result<Option<Vec<f32>>>,
) -> Result<Arc<dyn SetEncoder>> {
    let section = |name: &str| -> Result<Vec<f32>> {
        stored(name)?.ok_or_else(|| {
            Error::InvalidArgument(format!("encoder {token:?}: no stored {name} array"))
        })
    };
    let spec = parse_encoder(token)?
        .ok_or_else(|| Error::InvalidArgument(format!("{token:?} is not an encoder token")))?;
    Ok(match spec.kind {
        EncoderKind::Vlad => {
            let params = VladParams {
                root_sift: spec.root_sift,
                power: spec.power,
                intra: spec.intra,
                soft_alpha: spec.soft_alpha,
                residual_norm: spec.residual_norm,
            };
            let encoder = VladEncoder::from_parts(section("enc_centroids")?, dim_in, params)?;
            Arc::new(match stored("enc_rotations")? {
                Some(_) if !spec.local_rotations => {
                    return Err(Error::InvalidArgument(format!(
                        "encoder {token:?} has no local coordinate systems but rotations are stored"
                    )));
                }
                Some(rotations) => encoder.with_local_rotations(rotations)?,
                None => encoder,
            })
        }
        EncoderKind::Fisher => {
            let gmm = DiagGmm::from_parts(
                section("gmm_weights")?,
                section("gmm_means")?,
                section("gmm_vars")?,
                dim_in,
            )?;
            let params = FisherParams {
                root_sift: spec.root_sift,
                power: spec.power,
            };
            Arc::new(FisherEncoder::from_parts(gmm, params)?)
        }
        EncoderKind::Bof => {
            let params = BofParams {
                root_sift: spec.root_sift,
                sqrt_tf: spec.sqrt_tf,
            };
            Arc::new(BofEncoder::from_parts(
                section("enc_centroids")?,
                dim_in,
                section("enc_idf")?,
                params,
            )?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored arrays of a 2-word, 2-D VLAD encoder, with or without rotations.
    fn stored(rotations: bool) -> impl Fn(&str) -> Result<Option<Vec<f32>>> {
        move |name: &str| {
            Ok(match name {
                "enc_centroids" => Some(vec![0.0, 0.0, 10.0, 0.0]),
                "enc_rotations" if rotations => Some(vec![0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]),
                _ => None,
            })
        }
    }

    #[test]
    fn local_coordinate_systems_follow_the_stored_rotations() {
        // Current files: the default token with rotations, `_nolcs` without.
        let lcs = load_encoder("VLAD2", 2, &stored(true)).unwrap();
        assert_eq!(lcs.spec_token(), "VLAD2");
        let plain = load_encoder("VLAD2_nolcs", 2, &stored(false)).unwrap();
        assert_eq!(plain.spec_token(), "VLAD2_nolcs");
        // Files written when plain VLAD was the default: `VLAD2` without rotations is the
        // textbook VLAD, `VLAD2_lcs` with them the current default.
        let old = load_encoder("VLAD2", 2, &stored(false)).unwrap();
        assert_eq!(old.spec_token(), "VLAD2_nolcs");
        let old_lcs = load_encoder("VLAD2_lcs", 2, &stored(true)).unwrap();
        assert_eq!(old_lcs.spec_token(), "VLAD2");
        // Rotations under a token that rules them out, or missing centroids: errors.
        assert!(load_encoder("VLAD2_nolcs", 2, &stored(true)).is_err());
        assert!(load_encoder("VLAD2", 2, &|_: &str| Ok(None)).is_err());
    }
}
