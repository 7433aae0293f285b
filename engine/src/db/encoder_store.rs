//! Storing a trained local-descriptor encoder (VLAD, Fisher, BoF) in the model file: its
//! canonical spec token (which fixes every option) plus its arrays as f32 sections
//! (`enc_centroids`, `enc_rotations` for `_lcs`, `enc_idf`, `gmm_weights`, `gmm_means`,
//! `gmm_vars`, `fv_rotation` for FV's descriptor PCA).

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
        let mut s = vec![
            ("gmm_weights", f.gmm.weights.as_slice()),
            ("gmm_means", f.gmm.means.as_slice()),
            ("gmm_vars", f.gmm.variances.as_slice()),
        ];
        if !f.rotation().is_empty() {
            s.push(("fv_rotation", f.rotation()));
        }
        s
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

/// Rebuilds an encoder from its token and arrays (`section(name)` returns a stored array,
/// `has(name)` whether there is one).
pub fn load_encoder(
    token: &str,
    dim_in: usize,
    section: &dyn Fn(&str) -> Result<Vec<f32>>,
    has: &dyn Fn(&str) -> bool,
) -> Result<Arc<dyn SetEncoder>> {
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
            Arc::new(if spec.local_rotations {
                encoder.with_local_rotations(section("enc_rotations")?)?
            } else {
                encoder
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
                pca: spec.descriptor_pca,
            };
            let encoder = FisherEncoder::from_parts(gmm, params)?;
            // Model files from before FV's descriptor PCA carry the token `FV<k>` and no
            // rotation: they keep encoding without one, as their stored vectors were.
            Arc::new(if spec.descriptor_pca && has("fv_rotation") {
                encoder.with_rotation(section("fv_rotation")?)?
            } else {
                encoder
            })
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
