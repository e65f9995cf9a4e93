//! The image transform against torchvision's, on the real fixture photos
//! (reference tensors made by tests/fixtures/generate.py).

use std::path::Path;
use zoo_testkit::real_fixtures;

use zoo_card::PretrainedCfg;
use zoo_preprocess::{ImageTransform, PreprocessError};

fn reference(name: &str) -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchvision-reference.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let t = loaded.tensors.iter().find(|t| t.name == name).unwrap();
    t.data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// (mean, max) absolute difference.
fn diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    (
        d.iter().sum::<f32>() / d.len() as f32,
        d.iter().cloned().fold(0.0, f32::max),
    )
}

#[test]
fn imagenet_eval_transform_matches_torchvision() {
    let t = ImageTransform::from_cfg(&PretrainedCfg::default()).unwrap();
    for name in ["chelsea", "coffee"] {
        let ours = t
            .load(&real_fixtures().join(format!("images/{name}.png")))
            .unwrap();
        let (mean, max) = diff(&ours, &reference(name));
        eprintln!("{name}: mean |diff| {mean:.5}, max {max:.4}");
        // Pillow's pixels exactly (one grey level would be 1/255/0.225 ≈ 0.0174 here); what
        // is left is float rounding in the normalisation.
        assert!(
            max < 1e-5,
            "{name}: not torchvision's pixels; mean {mean}, max {max}"
        );
    }
}

/// Upsampling (a 28² image to 109, cropped to 96: the quickstart's Fashion-MNIST case) and
/// bicubic downsampling give Pillow's pixels too (issue 6: the `image` crate's resampler was
/// one grey level off on a tenth of the pixels, which moved fine-tuned logits by 0.3).
#[test]
fn upsampling_and_bicubic_match_torchvision_issue_6() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let half = [0.5; 3];
    let up = ImageTransform::from_cfg(&PretrainedCfg {
        input_size: [3, 96, 96],
        crop_pct: 0.88, // floor(96 / 0.88) = 109
        mean: half,
        std: half,
        ..PretrainedCfg::default()
    })
    .unwrap();
    let ours = up.load(&dir.join("small28.png")).unwrap();
    let (mean, max) = diff(&ours, &reference("small28_up96"));
    eprintln!("small28 -> 109 -> 96: mean |diff| {mean:.5}, max {max:.4}");
    assert!(max < 1e-5, "upsampling: mean {mean}, max {max}");
    let cubic = ImageTransform::from_cfg(&PretrainedCfg {
        crop_pct: 0.9, // floor(224 / 0.9) = 248
        interpolation: "bicubic".into(),
        mean: half,
        std: half,
        ..PretrainedCfg::default()
    })
    .unwrap();
    let ours = cubic
        .load(&real_fixtures().join("images/chelsea.png"))
        .unwrap();
    let (mean, max) = diff(&ours, &reference("chelsea_bicubic"));
    eprintln!("chelsea bicubic: mean |diff| {mean:.5}, max {max:.4}");
    assert!(max < 1e-5, "bicubic: mean {mean}, max {max}");
}

#[test]
fn greyscale_inputs_become_three_channels() {
    let cfg = PretrainedCfg {
        input_size: [3, 96, 96],
        crop_pct: 1.0,
        mean: [0.5; 3],
        std: [0.5; 3],
        ..PretrainedCfg::default()
    };
    let t = ImageTransform::from_cfg(&cfg).unwrap();
    let ours = t
        .load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grey.png"))
        .unwrap();
    assert_eq!(ours.len(), 3 * 96 * 96);
    let (mean, max) = diff(&ours, &reference("grey96"));
    eprintln!("grey96: mean |diff| {mean:.5}, max {max:.4}");
    assert!(max < 1e-5, "mean {mean}, max {max}");
    assert_eq!(
        &ours[..96 * 96],
        &ours[96 * 96..2 * 96 * 96],
        "the channels are equal"
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("zoo-preprocess-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let t = ImageTransform::from_cfg(&PretrainedCfg::default()).unwrap();
    match t.load(&bad) {
        Err(PreprocessError::Decode { path, .. }) => assert!(path.ends_with("broken.jpg")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.load(&dir.join("missing.png")),
        Err(PreprocessError::Io { .. })
    ));
    let cfg = PretrainedCfg {
        interpolation: "lanczos9".into(),
        ..PretrainedCfg::default()
    };
    assert!(matches!(
        ImageTransform::from_cfg(&cfg),
        Err(PreprocessError::Interpolation(_))
    ));
    let cfg = PretrainedCfg {
        crop_pct: 0.0,
        ..PretrainedCfg::default()
    };
    assert!(matches!(
        ImageTransform::from_cfg(&cfg),
        Err(PreprocessError::CropPct(_))
    ));
}

/// Regression (issue 6): torchvision's CenterCrop offset is Python's `round`, halves to even:
/// 109 → 96 starts at column/row 6, not 7 (a one-pixel shift that moved fine-tuned logits by
/// up to 1.5 against timm's transform at 96²).
#[test]
fn centre_crop_rounds_halves_to_even_like_python_issue_6() {
    let cfg = PretrainedCfg {
        input_size: [3, 96, 96],
        crop_pct: 0.875, // floor(96 / 0.875) = 109: the image below is not resized
        mean: [0.0; 3],
        std: [1.0; 3],
        ..PretrainedCfg::default()
    };
    let t = ImageTransform::from_cfg(&cfg).unwrap();
    // Red holds the column, green the row.
    let img = image::RgbImage::from_fn(109, 109, |x, y| image::Rgb([x as u8, y as u8, 0]));
    let out = t.apply(&img).unwrap();
    let plane = 96 * 96;
    assert_eq!(out[0], 6.0 / 255.0, "first column");
    assert_eq!(out[plane], 6.0 / 255.0, "first row");
    assert_eq!(out[95], 101.0 / 255.0, "last column");
}

/// Issue 13: timm's `crop_mode` is honoured where zoo applies it (`center`) and refused, by
/// name, where it would give other pixels.
#[test]
fn crop_mode_center_applies_and_others_are_refused_issue_13() {
    let mut cfg = zoo_card::PretrainedCfg {
        crop_mode: Some("center".into()),
        ..zoo_card::PretrainedCfg::default()
    };
    assert!(zoo_preprocess::ImageTransform::from_cfg(&cfg).is_ok());
    cfg.crop_mode = Some("squash".into());
    let e = zoo_preprocess::ImageTransform::from_cfg(&cfg).unwrap_err();
    assert!(e.to_string().contains("crop_mode `squash`"), "{e}");
}
