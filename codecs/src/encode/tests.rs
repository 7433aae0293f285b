//! Tests of the encoders on small generated sets with hand-computed expectations.

use super::*;
use crate::kmeans::{KMeansInit, KMeansParams, SeededRng};
use crate::vectors::VectorsRef;

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "component {i}: {x} vs {y}\n got {a:?}\nwant {b:?}"
        );
    }
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Two words c0 = (0, 0), c1 = (10, 0); descriptors (1, 2) and (−1, 1) go to c0, (12, −1)
/// to c1: residual sums v0 = (0, 3), v1 = (2, −1).
fn two_word_vlad(power: Option<f32>, intra: bool) -> Vec<f32> {
    let params = VladParams {
        root_sift: false,
        power,
        intra,
        soft_alpha: None,
        residual_norm: false,
    };
    let enc = VladEncoder::from_parts(vec![0.0, 0.0, 10.0, 0.0], 2, params).unwrap();
    let mut out = vec![0.0; 4];
    enc.encode(&[1.0, 2.0, -1.0, 1.0, 12.0, -1.0], &mut out)
        .unwrap();
    out
}

#[test]
fn vlad_two_words_by_hand() {
    let s5 = 5.0f32.sqrt();
    let s2 = 2.0f32.sqrt();
    let s3 = 3.0f32.sqrt();
    // No normalisation but the global L2: (0, 3, 2, −1) / √14.
    close(
        &two_word_vlad(None, false),
        &normalized(&[0.0, 3.0, 2.0, -1.0]),
        1e-6,
    );
    // Power 0.5: (0, √3, √2, −1) / √6.
    close(
        &two_word_vlad(Some(0.5), false),
        &normalized(&[0.0, s3, s2, -1.0]),
        1e-6,
    );
    // Intra: blocks (0, 1) and (2, −1)/√5, then / √2.
    close(
        &two_word_vlad(None, true),
        &[0.0, 1.0 / s2, 2.0 / s5 / s2, -1.0 / s5 / s2],
        1e-6,
    );
    // Power then intra: (0, 1) and (√2, −1)/√3, then / √2.
    close(
        &two_word_vlad(Some(0.5), true),
        &[0.0, 1.0 / s2, s2 / s3 / s2, -1.0 / s3 / s2],
        1e-6,
    );
}

#[test]
fn vlad_residual_normalisation_by_hand() {
    // Same two words and descriptors; residuals (1, 2), (−1, 1) and (2, −1) are first
    // scaled to unit length: v0 = (1, 2)/√5 + (−1, 1)/√2, v1 = (2, −1)/√5.
    let params = VladParams {
        root_sift: false,
        power: None,
        intra: false,
        soft_alpha: None,
        residual_norm: true,
    };
    let enc = VladEncoder::from_parts(vec![0.0, 0.0, 10.0, 0.0], 2, params).unwrap();
    let mut out = vec![0.0; 4];
    enc.encode(&[1.0, 2.0, -1.0, 1.0, 12.0, -1.0], &mut out)
        .unwrap();
    let (s5, s2) = (5.0f32.sqrt(), 2.0f32.sqrt());
    let want = [
        1.0 / s5 - 1.0 / s2,
        2.0 / s5 + 1.0 / s2,
        2.0 / s5,
        -1.0 / s5,
    ];
    close(&out, &normalized(&want), 1e-6);
    // Soft assignment with a very sharp softmax agrees with hard RN.
    let soft = VladEncoder::from_parts(
        vec![0.0, 0.0, 10.0, 0.0],
        2,
        VladParams {
            soft_alpha: Some(1e3),
            ..params
        },
    )
    .unwrap();
    let mut out_soft = vec![0.0; 4];
    soft.encode(&[1.0, 2.0, -1.0, 1.0, 12.0, -1.0], &mut out_soft)
        .unwrap();
    close(&out_soft, &out, 1e-5);
}

#[test]
fn vlad_soft_assignment_by_hand() {
    // 1-D words at 0 and 2, one descriptor at 0.5, alpha = 1: squared distances 0.25 and
    // 2.25, weights ∝ e^−0.25, e^−2.25.
    let params = VladParams {
        root_sift: false,
        power: None,
        intra: false,
        soft_alpha: Some(1.0),
        residual_norm: false,
    };
    let enc = VladEncoder::from_parts(vec![0.0, 2.0], 1, params).unwrap();
    let mut out = vec![0.0; 2];
    enc.encode(&[0.5], &mut out).unwrap();
    let (e0, e1) = ((-0.25f32).exp(), (-2.25f32).exp());
    let (w0, w1) = (e0 / (e0 + e1), e1 / (e0 + e1));
    close(&out, &normalized(&[w0 * 0.5, w1 * -1.5]), 1e-6);
    // A very sharp softmax is hard assignment.
    let sharp = VladParams {
        soft_alpha: Some(1e4),
        ..params
    };
    let hard = VladParams {
        soft_alpha: None,
        ..params
    };
    let data = [0.3f32, 1.4, 1.9, -0.2];
    let mut a = vec![0.0; 2];
    let mut b = vec![0.0; 2];
    VladEncoder::from_parts(vec![0.0, 2.0], 1, sharp)
        .unwrap()
        .encode(&data, &mut a)
        .unwrap();
    VladEncoder::from_parts(vec![0.0, 2.0], 1, hard)
        .unwrap()
        .encode(&data, &mut b)
        .unwrap();
    close(&a, &b, 1e-5);
}

#[test]
fn vlad_soft_assignment_drops_traces_below_the_floor() {
    // 1-D words at 0 and 2, alpha = 2, intra-normalisation on. A descriptor at 0.9 gives
    // word 1 a weight of 1 / (1 + e^1.6) ≈ 0.17 (kept); one at 0.1 gives it
    // 1 / (1 + e^7.6) ≈ 5e-4 (below SOFT_MIN_WEIGHT): word 1 must stay an empty block,
    // not a trace blown up to a unit block by intra-normalisation.
    let params = VladParams {
        root_sift: false,
        power: None,
        intra: true,
        soft_alpha: Some(2.0),
        residual_norm: false,
    };
    let enc = VladEncoder::from_parts(vec![0.0, 2.0], 1, params).unwrap();
    let mut out = vec![0.0; 2];
    enc.encode(&[0.1], &mut out).unwrap();
    close(&out, &[1.0, 0.0], 1e-6);
    // Above the floor both words keep their share (intra: ±1 each, then global L2).
    enc.encode(&[0.9], &mut out).unwrap();
    let h = std::f32::consts::FRAC_1_SQRT_2;
    close(&out, &[h, -h], 1e-6);
    // Without intra-normalisation too: words at 0, 2 and 2.817, a descriptor at 1.
    // Squared distances 1, 1 and 3.3: weights ≈ 0.4975, 0.4975 and 0.005. The third is
    // dropped (its block stays exactly zero) and the first two share the descriptor
    // evenly: 0.5 · (1 − 0) and 0.5 · (1 − 2).
    let plain = VladParams {
        intra: false,
        ..params
    };
    let enc = VladEncoder::from_parts(vec![0.0, 2.0, 2.817], 1, plain).unwrap();
    let mut out = vec![0.0; 3];
    enc.encode(&[1.0], &mut out).unwrap();
    assert_eq!(out[2], 0.0);
    close(&out, &normalized(&[0.5, -0.5, 0.0]), 1e-6);
    const { assert!(SOFT_MIN_WEIGHT > 0.0 && SOFT_MIN_WEIGHT < 0.1) };
    // 300 words on a circle around the descriptor: every weight is 1/300, below the
    // floor, and all are kept rather than none (which would divide by zero).
    let k = 300;
    let words: Vec<f32> = (0..k)
        .flat_map(|i| {
            let t = i as f32 * std::f32::consts::TAU / k as f32;
            [t.cos(), t.sin()]
        })
        .collect();
    let enc = VladEncoder::from_parts(words, 2, plain).unwrap();
    let mut out = vec![0.0; 2 * k];
    enc.encode(&[0.0, 0.0], &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
    let norm: f32 = out.iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
}

fn random_matrix(rng: &mut SeededRng, rows: usize, dim: usize, scale: f32) -> Vec<f32> {
    (0..rows * dim)
        .map(|_| (rng.next_f64() as f32) * scale)
        .collect()
}

#[test]
fn vlad_is_invariant_to_descriptor_order() {
    let mut rng = SeededRng::new(7);
    let dim = 8;
    let centroids = random_matrix(&mut rng, 4, dim, 10.0);
    let set = random_matrix(&mut rng, 30, dim, 10.0);
    let mut rows: Vec<&[f32]> = set.chunks_exact(dim).collect();
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.below(i + 1));
    }
    let shuffled: Vec<f32> = rows.concat();
    for soft in [None, Some(0.5)] {
        let params = VladParams {
            soft_alpha: soft,
            ..VladParams::default()
        };
        let enc = VladEncoder::from_parts(centroids.clone(), dim, params).unwrap();
        let mut a = vec![0.0; enc.dim_out()];
        let mut b = vec![0.0; enc.dim_out()];
        enc.encode(&set, &mut a).unwrap();
        enc.encode(&shuffled, &mut b).unwrap();
        close(&a, &b, 1e-5);
        assert!(a.iter().any(|&v| v != 0.0));
    }
}

/// `n_images` images of `dim`-D u8 descriptors, some of them empty.
fn generated_sets(seed: u64, n_images: usize, dim: usize) -> (Vec<u8>, Vec<u64>) {
    let mut rng = SeededRng::new(seed);
    let mut offsets = vec![0u64];
    let mut data = Vec::new();
    for i in 0..n_images {
        let n = if i % 7 == 3 { 0 } else { 1 + rng.below(40) };
        let center = rng.below(4) * 60;
        for _ in 0..n * dim {
            data.push((center + rng.below(50)) as u8);
        }
        offsets.push(offsets[i] + n as u64);
    }
    (data, offsets)
}

#[test]
fn non_empty_codes_keeps_the_rows_of_images_with_descriptors() {
    // Four 1-D images: two descriptors, none, one, none.
    let descriptors = [1.0f32, 2.0, 3.0];
    let sets = DescriptorSets::new(
        VectorsRef::from_f32(&descriptors, 1).unwrap(),
        &[0, 2, 2, 3, 3],
    )
    .unwrap();
    let codes = [10.0f32, 11.0, 20.0, 21.0, 30.0, 31.0, 40.0, 41.0];
    assert_eq!(
        non_empty_codes(&codes, 2, &sets).unwrap(),
        vec![10.0, 11.0, 30.0, 31.0]
    );
    assert!(non_empty_codes(&codes[..6], 2, &sets).is_err());
}

#[test]
fn encode_sets_matches_single_encodes_and_reports_empty_images() {
    let dim = 8;
    let (data, offsets) = generated_sets(3, 600, dim);
    let sets = DescriptorSets::new(VectorsRef::from_u8(&data, dim).unwrap(), &offsets).unwrap();
    assert!(
        sets.total_descriptors() > 2 * GROUP_DESCRIPTORS,
        "exercise several groups"
    );
    let mut rng = SeededRng::new(11);
    let vocab = random_matrix(&mut rng, 5, dim, 1.0);
    let root_vocab = {
        let mut v = vocab.clone();
        root_sift_rows(&mut v, dim);
        v
    };
    let encoders: Vec<Box<dyn SetEncoder>> = vec![
        Box::new(VladEncoder::from_parts(root_vocab.clone(), dim, VladParams::default()).unwrap()),
        Box::new(
            VladEncoder::from_parts(
                root_vocab.clone(),
                dim,
                VladParams {
                    soft_alpha: Some(20.0),
                    ..VladParams::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            BofEncoder::from_parts(
                root_vocab.clone(),
                dim,
                vec![0.5, 1.0, 2.0, 1.0, 3.0],
                BofParams::default(),
            )
            .unwrap(),
        ),
        Box::new(
            FisherEncoder::from_parts(
                DiagGmm::from_parts(vec![0.2; 5], root_vocab, vec![0.01; 5 * dim], dim).unwrap(),
                FisherParams::default(),
            )
            .unwrap(),
        ),
    ];
    for enc in &encoders {
        let (codes, empty) = encode_sets(enc.as_ref(), &sets).unwrap();
        let want_empty: Vec<usize> = (0..sets.len()).filter(|i| i % 7 == 3).collect();
        assert_eq!(empty, want_empty);
        let d = enc.dim_out();
        let mut single = vec![0.0; d];
        for i in 0..sets.len() {
            let r = sets.range(i);
            let set = sets.descriptors().to_f32_vec(r.start, r.len());
            enc.encode(&set, &mut single).unwrap();
            close(&codes[i * d..(i + 1) * d], &single, 1e-6);
            let norm: f32 = single.iter().map(|x| x * x).sum();
            if r.is_empty() {
                assert!(
                    single.iter().all(|&v| v == 0.0),
                    "empty set encodes to zeros"
                );
            } else {
                assert!(
                    (norm - 1.0).abs() < 1e-4,
                    "{} image {i} norm {norm}",
                    enc.spec_token()
                );
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let enc = VladEncoder::from_parts(vec![0.0, 0.0, 1.0, 1.0], 2, VladParams::default()).unwrap();
    let mut out = vec![0.0; 4];
    assert!(enc.encode(&[1.0, 2.0, 3.0], &mut out).is_err());
    assert!(enc.encode(&[1.0, f32::NAN], &mut out).is_err());
    assert!(enc.encode(&[1.0, 2.0], &mut out[..3]).is_err());
    assert!(enc.encode_prepared(&[1.0, 2.0], &[0, 2], &mut out).is_err());
    assert!(enc.encode_prepared(&[1.0, 2.0], &[1, 1], &mut out).is_err());
    assert!(VladEncoder::from_parts(vec![], 2, VladParams::default()).is_err());
    assert!(
        VladEncoder::from_parts(
            vec![1.0; 4],
            2,
            VladParams {
                power: Some(-1.0),
                ..VladParams::default()
            }
        )
        .is_err()
    );
    assert!(DiagGmm::from_parts(vec![1.0], vec![0.0; 2], vec![0.0; 2], 2).is_err());
    assert!(BofEncoder::from_parts(vec![0.0; 4], 2, vec![1.0], BofParams::default()).is_err());
    let data = [0u8; 6];
    let sets = DescriptorSets::new(VectorsRef::from_u8(&data, 3).unwrap(), &[0, 2]).unwrap();
    assert!(encode_sets(&enc, &sets).is_err(), "dimension mismatch");
}

/// The two-word example with local rotations: word 0 rotated by 45°
/// (`[[c, c], [−c, c]]`, `c = 1/√2`), word 1's axes swapped: v0 = (0, 3) → (3c, 3c),
/// v1 = (2, −1) → (−1, 2).
fn two_word_vlad_rotated(power: Option<f32>, intra: bool) -> Vec<f32> {
    let params = VladParams {
        root_sift: false,
        power,
        intra,
        soft_alpha: None,
        residual_norm: false,
    };
    let c = std::f32::consts::FRAC_1_SQRT_2;
    let enc = VladEncoder::from_parts(vec![0.0, 0.0, 10.0, 0.0], 2, params)
        .unwrap()
        .with_local_rotations(vec![c, c, -c, c, 0.0, 1.0, 1.0, 0.0])
        .unwrap();
    assert!(
        enc.spec_token().ends_with("_noroot_lcs"),
        "{}",
        enc.spec_token()
    );
    let mut out = vec![0.0; 4];
    enc.encode(&[1.0, 2.0, -1.0, 1.0, 12.0, -1.0], &mut out)
        .unwrap();
    out
}

#[test]
fn vlad_local_rotations_by_hand() {
    let c = std::f32::consts::FRAC_1_SQRT_2;
    // No power law, no intra: the rotated sums, L2-normalised (‖·‖² = 9 + 1 + 4).
    let raw = two_word_vlad_rotated(None, false);
    close(&raw, &normalized(&[3.0 * c, 3.0 * c, -1.0, 2.0]), 1e-6);
    // Power law after the rotation: (√(3c), √(3c)) and (−1, √2); intra makes them
    // (1, 1)/√2 and (−1, √2)/√3; two non-empty words: global 1/√2.
    let full = two_word_vlad_rotated(Some(0.5), true);
    let want = [0.5, 0.5, -1.0 / 6.0f32.sqrt(), 1.0 / 3.0f32.sqrt()];
    close(&full, &want, 1e-6);
    // The rotation changes what the power law sees: not the unrotated code.
    assert!((full[1] - two_word_vlad(Some(0.5), true)[1]).abs() > 0.1);
    // Identity rotations change nothing.
    let params = VladParams::default();
    let mut rng = SeededRng::new(4);
    let (dim, k) = (8, 3);
    let centroids = random_matrix(&mut rng, k, dim, 1.0);
    let set = random_matrix(&mut rng, 20, dim, 1.0);
    let plain = VladEncoder::from_parts(centroids.clone(), dim, params).unwrap();
    let mut eye = vec![0.0f32; k * dim * dim];
    for w in 0..k {
        for i in 0..dim {
            eye[w * dim * dim + i * dim + i] = 1.0;
        }
    }
    let rotated = plain.clone().with_local_rotations(eye).unwrap();
    let (mut a, mut b) = (vec![0.0; k * dim], vec![0.0; k * dim]);
    plain.encode(&set, &mut a).unwrap();
    rotated.encode(&set, &mut b).unwrap();
    close(&a, &b, 1e-6);
    // Stored rotations are checked.
    assert!(plain.clone().with_local_rotations(vec![1.0; 5]).is_err());
    assert!(
        plain
            .with_local_rotations(vec![f32::INFINITY; k * dim * dim])
            .is_err()
    );
}

#[test]
fn fitted_local_rotations_are_orthonormal_and_deterministic() {
    let dim = 8;
    let (data, offsets) = generated_sets(17, 200, dim);
    let sets = DescriptorSets::new(VectorsRef::from_u8(&data, dim).unwrap(), &offsets).unwrap();
    let enc = parse_encoder("VLAD4_rn_lcs")
        .unwrap()
        .unwrap()
        .train(&sets, 5)
        .unwrap();
    let vlad = enc.as_any().downcast_ref::<VladEncoder>().unwrap();
    assert_eq!(vlad.local_rotations().len(), 4 * dim * dim);
    for r in vlad.local_rotations().chunks_exact(dim * dim) {
        for i in 0..dim {
            for j in 0..dim {
                let dot: f32 = (0..dim).map(|t| r[i * dim + t] * r[j * dim + t]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-4, "rows {i}, {j}: {dot}");
            }
        }
    }
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let enc = parse_encoder("VLAD4_lcs")
                .unwrap()
                .unwrap()
                .train(&sets, 5)
                .unwrap();
            let v = enc.as_any().downcast_ref::<VladEncoder>().unwrap();
            v.local_rotations().to_vec()
        })
    };
    assert_eq!(on(1), on(3));
    // Batches rotate word by word across images, single images alone: same codes.
    let (codes, _) = encode_sets(enc.as_ref(), &sets).unwrap();
    let d = enc.dim_out();
    let mut one = vec![0.0f32; d];
    for i in 0..sets.len() {
        let mut set = Vec::new();
        sets.images_f32_into(i, i + 1, &mut set);
        enc.encode(&set, &mut one).unwrap();
        assert_eq!(&codes[i * d..(i + 1) * d], &one[..], "image {i}");
    }
}

#[test]
fn vocabulary_adaptation_moves_words_to_assigned_means() {
    let data: Vec<f32> = vec![1.0, 2.0, 3.0, 9.0, 11.0, 40.0];
    let offsets = [0u64, 2, 2, 6];
    let sets = DescriptorSets::new(VectorsRef::from_f32(&data, 1).unwrap(), &offsets).unwrap();
    let params = VladParams {
        root_sift: false,
        ..VladParams::default()
    };
    // Words at 0, 10, 100: 1, 2, 3 go to 0; 9, 11, 40 to 10; none to 100.
    let mut enc = VladEncoder::from_parts(vec![0.0, 10.0, 100.0], 1, params).unwrap();
    assert_eq!(enc.adapt(&sets).unwrap(), 2);
    close(&enc.centroids, &[2.0, 20.0, 100.0], 1e-6);
}

#[test]
fn bof_by_hand() {
    // 1-D words at 0 and 10. Image A = {0, 1, 9}: counts (2, 1); B = {0.5}: (1, 0); C empty.
    let data = [0.0f32, 1.0, 9.0, 0.5];
    let offsets = [0u64, 3, 4, 4];
    let sets = DescriptorSets::new(VectorsRef::from_f32(&data, 1).unwrap(), &offsets).unwrap();
    let params = BofParams {
        root_sift: false,
        sqrt_tf: true,
    };
    let mut enc = BofEncoder::from_parts(vec![0.0, 10.0], 1, vec![1.0, 1.0], params).unwrap();
    enc.fit_idf(&sets).unwrap();
    let (idf0, idf1) = ((3.0f32 / 2.0).ln(), 3.0f32.ln());
    close(&enc.idf, &[idf0, idf1], 1e-6);
    let (codes, empty) = encode_sets(&enc, &sets).unwrap();
    assert_eq!(empty, vec![2]);
    close(
        &codes[0..2],
        &normalized(&[2.0f32.sqrt() * idf0, idf1]),
        1e-6,
    );
    close(&codes[2..4], &[1.0, 0.0], 1e-6);
    close(&codes[4..6], &[0.0, 0.0], 0.0);
    let raw = BofEncoder {
        params: BofParams {
            sqrt_tf: false,
            ..params
        },
        ..enc
    };
    let mut out = vec![0.0; 2];
    raw.encode(&[0.0, 1.0, 9.0], &mut out).unwrap();
    close(&out, &normalized(&[2.0 * idf0, idf1]), 1e-6);
}

#[test]
fn fisher_by_hand() {
    // Two 1-D Gaussians: π = (0.25, 0.75), μ = (−5, 5), σ² = (1, 4); descriptors −4 and 7.
    let gmm = DiagGmm::from_parts(vec![0.25, 0.75], vec![-5.0, 5.0], vec![1.0, 4.0], 1).unwrap();
    let params = FisherParams {
        root_sift: false,
        power: None,
        pca: false,
    };
    let enc = FisherEncoder::from_parts(gmm, params).unwrap();
    let mut out = vec![0.0; 4];
    enc.encode(&[-4.0, 7.0], &mut out).unwrap();
    let pdf = |x: f64, m: f64, v: f64| {
        (-(x - m) * (x - m) / (2.0 * v)).exp() / (2.0 * std::f64::consts::PI * v).sqrt()
    };
    let (pi, mu, var) = ([0.25f64, 0.75], [-5.0f64, 5.0], [1.0f64, 4.0]);
    let mut g_mu = [0.0f64; 2];
    let mut g_s = [0.0f64; 2];
    for x in [-4.0f64, 7.0] {
        let p: Vec<f64> = (0..2).map(|k| pi[k] * pdf(x, mu[k], var[k])).collect();
        let total: f64 = p.iter().sum();
        for k in 0..2 {
            let z = (x - mu[k]) / var[k].sqrt();
            g_mu[k] += p[k] / total * z;
            g_s[k] += p[k] / total * (z * z - 1.0);
        }
    }
    let t = 2.0;
    let want: Vec<f32> = vec![
        (g_mu[0] / (t * pi[0].sqrt())) as f32,
        (g_mu[1] / (t * pi[1].sqrt())) as f32,
        (g_s[0] / (t * (2.0 * pi[0]).sqrt())) as f32,
        (g_s[1] / (t * (2.0 * pi[1]).sqrt())) as f32,
    ];
    close(&out, &normalized(&want), 1e-5);
    // With the power law.
    let powered = FisherEncoder::from_parts(
        enc.gmm.clone(),
        FisherParams {
            power: Some(0.5),
            ..params
        },
    )
    .unwrap();
    powered.encode(&[-4.0, 7.0], &mut out).unwrap();
    let signed_sqrt: Vec<f32> = want.iter().map(|v| v.abs().sqrt().copysign(*v)).collect();
    close(&out, &normalized(&signed_sqrt), 1e-5);
}

#[test]
fn fisher_descriptor_pca_rotates_into_the_principal_axes() {
    // 2-D descriptors stretched along (1, 1): the first principal axis is ±(1, 1)/√2.
    let mut rng = SeededRng::new(23);
    let mut sample = Vec::new();
    for _ in 0..2_000 {
        let (a, b) = (rng.normal() as f32 * 5.0, rng.normal() as f32 * 0.5);
        sample.extend_from_slice(&[10.0 + a + b, 10.0 + a - b]);
    }
    let params = FisherParams {
        root_sift: false,
        power: None,
        pca: true,
    };
    let gmm = GmmParams {
        iterations: 5,
        ..GmmParams::default()
    };
    let enc = FisherEncoder::train(sample.clone(), 2, 2, params, &gmm).unwrap();
    let r = enc.rotation();
    assert_eq!(r.len(), 4);
    let h = std::f32::consts::FRAC_1_SQRT_2;
    assert!(
        (r[0] * h + r[1] * h).abs() > 0.999,
        "first axis {:?}",
        &r[..2]
    );
    assert!(
        (r[2] * h - r[3] * h).abs() > 0.999,
        "second axis {:?}",
        &r[2..]
    );
    assert!(enc.spec_token().starts_with("FV2") && !enc.spec_token().contains("nopca"));
    // Encoding x with the rotation is encoding R·x without it (same mixture).
    let plain = FisherEncoder::from_parts(enc.gmm.clone(), params).unwrap();
    assert!(plain.rotation().is_empty() && plain.spec_token().ends_with("_nopca"));
    let x = [12.0f32, 7.5, 3.0, 9.0];
    let rx: Vec<f32> = x
        .chunks_exact(2)
        .flat_map(|p| [r[0] * p[0] + r[1] * p[1], r[2] * p[0] + r[3] * p[1]])
        .collect();
    let (mut a, mut b) = (vec![0.0; 8], vec![0.0; 8]);
    enc.encode(&x, &mut a).unwrap();
    plain.encode(&rx, &mut b).unwrap();
    close(&a, &b, 1e-5);
    // The same data with `pca: false` trains no rotation; a malformed stored one is refused.
    let off = FisherEncoder::train(
        sample,
        2,
        2,
        FisherParams {
            pca: false,
            ..params
        },
        &gmm,
    )
    .unwrap();
    assert!(off.rotation().is_empty() && !off.params.pca);
    assert!(plain.clone().with_rotation(vec![1.0, 0.0, 0.0]).is_err());
    assert!(plain.with_rotation(vec![1.0, f32::NAN, 0.0, 1.0]).is_err());
}

#[test]
fn gmm_em_increases_log_likelihood_and_finds_clusters() {
    let mut rng = SeededRng::new(5);
    let dim = 4;
    let centers = [
        [0.0f32, 0.0, 0.0, 0.0],
        [8.0, 8.0, 0.0, 0.0],
        [0.0, 8.0, 8.0, 8.0],
    ];
    let spreads = [0.5f32, 1.0, 1.5];
    let mut data = Vec::new();
    for i in 0..3000 {
        let c = i % 3;
        for &center in &centers[c] {
            data.push(center + spreads[c] * rng.normal() as f32);
        }
    }
    let params = GmmParams {
        iterations: 15,
        tolerance: 0.0,
        kmeans: KMeansParams {
            iterations: 3,
            seed: 9,
            init: KMeansInit::PlusPlus,
            ..KMeansParams::default()
        },
        ..GmmParams::default()
    };
    let (gmm, history) = DiagGmm::train(&data, dim, 3, &params).unwrap();
    assert!(history.len() >= 3);
    for w in history.windows(2) {
        assert!(
            w[1] >= w[0] - 1e-6,
            "EM log-likelihood decreased: {history:?}"
        );
    }
    assert!(history.last().unwrap() > history.first().unwrap());
    // Each true cluster is matched by a component with the right mean and variance.
    for (c, spread) in centers.iter().zip(spreads) {
        let j = (0..3)
            .min_by(|&a, &b| {
                let da = crate::distance::l2_sqr(&gmm.means[a * dim..(a + 1) * dim], c);
                let db = crate::distance::l2_sqr(&gmm.means[b * dim..(b + 1) * dim], c);
                da.total_cmp(&db)
            })
            .unwrap();
        close(&gmm.means[j * dim..(j + 1) * dim], c, 0.2);
        for v in &gmm.variances[j * dim..(j + 1) * dim] {
            assert!(
                (v / (spread * spread) - 1.0).abs() < 0.2,
                "variance {v} vs {}",
                spread * spread
            );
        }
        assert!((gmm.weights[j] - 1.0 / 3.0).abs() < 0.02);
    }
    assert!(DiagGmm::train(&data[..dim], dim, 3, &params).is_err());
}

#[test]
fn parses_encoder_tokens() {
    for other in ["PCA128", "IVF256", "PQ16", "Flat", "", "vlad64", "OPQ16"] {
        assert_eq!(parse_encoder(other).unwrap(), None, "{other}");
    }
    let v = parse_encoder("VLAD64").unwrap().unwrap();
    assert_eq!(v, EncoderSpec::new(EncoderKind::Vlad, 64));
    assert!(v.root_sift && v.intra && v.power == Some(0.5) && !v.adapt && v.soft_alpha.is_none());
    assert_eq!(v.max_train_descriptors, 200_000);
    assert_eq!(parse_encoder("VLAD64i").unwrap().unwrap(), v);
    let w = parse_encoder("VLAD16_nopow_nointra_noroot_adapt_soft100_rn_it5_sample5000")
        .unwrap()
        .unwrap();
    assert_eq!(w.k, 16);
    assert!(!w.root_sift && !w.intra && w.power.is_none() && w.adapt && w.residual_norm);
    assert_eq!(
        (w.soft_alpha, w.kmeans_iterations, w.max_train_descriptors),
        (Some(100.0), 5, 5000)
    );
    assert_eq!(
        parse_encoder("VLAD8_pow0.2").unwrap().unwrap().power,
        Some(0.2)
    );
    let l = parse_encoder("VLAD64_rn_lcs_redo3").unwrap().unwrap();
    assert!(l.residual_norm && l.local_rotations && !v.local_rotations);
    assert_eq!((l.kmeans_restarts, v.kmeans_restarts), (3, 1));
    let f = parse_encoder("FV64_em5").unwrap().unwrap();
    assert_eq!((f.kind, f.k, f.em_iterations), (EncoderKind::Fisher, 64, 5));
    assert!(f.descriptor_pca && !v.descriptor_pca);
    assert!(!parse_encoder("FV8_nopca").unwrap().unwrap().descriptor_pca);
    let b = parse_encoder("BOF1024_noidf_nosqrt").unwrap().unwrap();
    assert_eq!(
        (b.kind, b.k, b.idf, b.sqrt_tf, b.kmeans_iterations),
        (EncoderKind::Bof, 1024, false, false, 10)
    );
    for bad in [
        "VLAD",
        "VLAD0",
        "VLADx",
        "VLAD64x",
        "VLAD64_",
        "VLAD64_bogus",
        "VLAD64_nopow_pow0.3",
        "VLAD64i_nointra",
        "VLAD64_pow",
        "VLAD64_pow-1",
        "VLAD64_soft0",
        "VLAD64_it0",
        "VLAD64_noidf",
        "FV64i",
        "FV64_adapt",
        "BOF100_nopow",
        "FV8_rn",
        "VLAD8_rn_rn",
        "BOF",
        "BOF100_em3",
        "VLAD64_sample+5",
        "VLAD99999999999999999999",
        "FV64_lcs",
        "BOF100_lcs",
        "VLAD64_lcs_lcs",
        "FV64_redo2",
        "VLAD64_redo0",
        "VLAD64_redo",
        "VLAD64_nopca",
        "BOF100_nopca",
        "FV8_nopca_nopca",
    ] {
        assert!(parse_encoder(bad).is_err(), "{bad} should be rejected");
    }
    for token in [
        "VLAD64",
        "VLAD16_pow0.3_nointra_noroot_adapt_soft50_rn_it3_sample100",
        "FV32_nopow_em7",
        "FV16_noroot_nopca_em3",
        "BOF512_noidf",
        "VLAD64_rn_lcs_redo3",
        "BOF100_redo2",
    ] {
        let spec = parse_encoder(token).unwrap().unwrap();
        assert_eq!(spec.to_string(), token);
        assert_eq!(parse_encoder(&spec.to_string()).unwrap().unwrap(), spec);
    }
}

#[test]
fn specs_train_working_encoders() {
    let dim = 8;
    let (data, offsets) = generated_sets(21, 120, dim);
    let sets = DescriptorSets::new(VectorsRef::from_u8(&data, dim).unwrap(), &offsets).unwrap();
    for token in [
        "VLAD4",
        "VLAD4_adapt_soft10",
        "VLAD4_rn",
        "FV3_em4_it4",
        "BOF6",
        "VLAD4_sample300",
        "VLAD4_lcs",
        "VLAD4_adapt_rn_lcs_redo2",
        "VLAD4_soft10_lcs",
        "BOF6_redo3",
    ] {
        let spec = parse_encoder(token).unwrap().unwrap();
        let enc = spec.train(&sets, 42).unwrap();
        assert_eq!(enc.dim_in(), dim);
        assert_eq!(enc.dim_out(), spec.dim_out(dim));
        let (codes, empty) = encode_sets(enc.as_ref(), &sets).unwrap();
        assert_eq!(codes.len(), sets.len() * enc.dim_out());
        assert_eq!(empty.len(), (0..sets.len()).filter(|i| i % 7 == 3).count());
        assert!(codes.iter().all(|v| v.is_finite()));
        // Deterministic for a seed.
        let again = spec.train(&sets, 42).unwrap();
        assert_eq!(
            encode_sets(again.as_ref(), &sets).unwrap().0,
            codes,
            "{token}"
        );
    }
    let bof = parse_encoder("BOF6")
        .unwrap()
        .unwrap()
        .train(&sets, 1)
        .unwrap();
    let bof = bof.as_any().downcast_ref::<BofEncoder>().unwrap();
    assert!(bof.idf.iter().all(|&w| w >= 0.0) && bof.idf.iter().any(|&w| w != 1.0));
    let tiny =
        DescriptorSets::new(VectorsRef::from_u8(&data[..2 * dim], dim).unwrap(), &[0, 2]).unwrap();
    assert!(
        parse_encoder("VLAD4")
            .unwrap()
            .unwrap()
            .train(&tiny, 1)
            .is_err()
    );
}

#[test]
fn encoding_does_not_depend_on_the_thread_count() {
    let dim = 8;
    let (data, offsets) = generated_sets(9, 300, dim);
    let sets = DescriptorSets::new(VectorsRef::from_u8(&data, dim).unwrap(), &offsets).unwrap();
    for token in [
        "VLAD4",
        "FV2_em2_it2",
        "BOF5",
        "VLAD4_lcs",
        "VLAD4_soft5_lcs",
    ] {
        let enc = parse_encoder(token)
            .unwrap()
            .unwrap()
            .train(&sets, 3)
            .unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| encode_sets(enc.as_ref(), &sets).unwrap())
        };
        assert_eq!(run(1), run(3), "{token}");
    }
}
