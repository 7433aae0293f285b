//! Every SIMD path against the scalar reference (and the scalar reference against a plain
//! f64 computation) on random lengths, including odd tails.

use super::*;
use proptest::prelude::*;

/// Relative tolerance for f32 sums whose order differs between paths.
fn close(a: f32, b: f32, scale: f32) -> bool {
    (a - b).abs() <= 1e-5 * scale.max(1.0)
}

fn f32_pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (0usize..300).prop_flat_map(|n| {
        (
            proptest::collection::vec(-100.0f32..100.0, n),
            proptest::collection::vec(-100.0f32..100.0, n),
        )
    })
}

fn u8_f32_pair() -> impl Strategy<Value = (Vec<u8>, Vec<f32>)> {
    (0usize..300).prop_flat_map(|n| {
        (
            proptest::collection::vec(any::<u8>(), n),
            proptest::collection::vec(-300.0f32..300.0, n),
        )
    })
}

fn u8_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (0usize..300).prop_flat_map(|n| {
        (
            proptest::collection::vec(any::<u8>(), n),
            proptest::collection::vec(any::<u8>(), n),
        )
    })
}

proptest! {
    #[test]
    fn f32_paths_agree((a, b) in f32_pair()) {
        let l2_ref: f64 = a.iter().zip(&b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
        let ip_ref: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
        let ip_scale: f64 = a.iter().zip(&b).map(|(&x, &y)| (f64::from(x) * f64::from(y)).abs()).sum();
        for (name, k) in available() {
            let l2 = (k.l2_sqr)(&a, &b);
            prop_assert!(close(l2, l2_ref as f32, l2_ref as f32), "{name} l2 {l2} vs {l2_ref}");
            let ip = (k.inner_product)(&a, &b);
            prop_assert!(close(ip, ip_ref as f32, ip_scale as f32), "{name} ip {ip} vs {ip_ref}");
        }
    }

    #[test]
    fn u8_f32_paths_agree((a, b) in u8_f32_pair()) {
        let l2_ref: f64 = a.iter().zip(&b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
        let ip_ref: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
        let ip_scale: f64 = a.iter().zip(&b).map(|(&x, &y)| (f64::from(x) * f64::from(y)).abs()).sum();
        for (name, k) in available() {
            let l2 = (k.l2_sqr_u8_f32)(&a, &b);
            prop_assert!(close(l2, l2_ref as f32, l2_ref as f32), "{name} l2 {l2} vs {l2_ref}");
            let ip = (k.inner_product_u8_f32)(&a, &b);
            prop_assert!(close(ip, ip_ref as f32, ip_scale as f32), "{name} ip {ip} vs {ip_ref}");
        }
    }

    #[test]
    fn u8_paths_are_exact((a, b) in u8_pair()) {
        let exact: u64 = a.iter().zip(&b).map(|(&x, &y)| u64::from(x.abs_diff(y)).pow(2)).sum();
        for (name, k) in available() {
            prop_assert_eq!((k.l2_sqr_u8)(&a, &b), exact as f32, "{}", name);
        }
    }
}

#[test]
fn dispatch_picks_the_last_available_path() {
    let paths = available();
    assert_eq!(paths[0].0, "scalar");
    assert_eq!(kernels().name, paths.last().map(|p| p.0).unwrap_or("none"));
    assert_eq!(l2_sqr(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), 8.0);
    assert_eq!(inner_product(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), 10.0);
    assert_eq!(l2_sqr_u8_f32(&[1, 2, 3], &[3.0, 2.0, 1.0]), 8.0);
    assert_eq!(inner_product_u8_f32(&[1, 2, 3], &[3.0, 2.0, 1.0]), 10.0);
    assert_eq!(l2_sqr_u8(&[0, 255, 3], &[255, 0, 1]), 130054.0);
}

#[test]
fn long_u8_vectors_do_not_overflow_lanes() {
    // 200k elements of maximal difference: far past one lane flush.
    let n = 200_000;
    let a = vec![0u8; n];
    let b = vec![255u8; n];
    let exact = (n as u64 * 255 * 255) as f32;
    for (name, k) in available() {
        assert_eq!((k.l2_sqr_u8)(&a, &b), exact, "{name}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x86_paths_are_listed_when_supported() {
    let names: Vec<&str> = available().iter().map(|p| p.0).collect();
    assert_eq!(
        names.contains(&"avx2"),
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    );
    assert_eq!(
        names.contains(&"avx512"),
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
    );
}
