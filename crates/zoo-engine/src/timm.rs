//! timm's names for the image architectures whose torchvision layout zoo builds. A model
//! zoo publishes is named the timm way (`mobilenetv2_100`, `conv_stem`, `blocks.S.I…`,
//! `stages.S.blocks.I…`), so `timm.create_model("hf-hub:org/name", pretrained=True)` loads it;
//! a timm-named checkpoint loads back into zoo, and torchvision-named ones still import.
//! ResNet's names are the same in both; ViT is timm's already.

/// The timm name of a torchvision architecture.
pub fn timm_arch(arch: &str) -> &str {
    match arch {
        "mobilenet_v2" => "mobilenetv2_100",
        other => other,
    }
}

/// The architecture zoo builds for a timm name.
pub fn torchvision_arch(arch: &str) -> &str {
    match arch {
        "mobilenetv2_100" => "mobilenet_v2",
        other => other,
    }
}

/// Blocks per stage of MobileNetV2 (torchvision's `features.1` … `features.17`).
const MNV2_STAGES: [usize; 7] = [1, 2, 3, 4, 3, 3, 1];

fn mnv2_stage(feature: usize) -> Option<(usize, usize)> {
    let mut first = 1;
    for (s, &n) in MNV2_STAGES.iter().enumerate() {
        if feature < first + n {
            return Some((s, feature - first));
        }
        first += n;
    }
    None
}

fn mnv2_feature(stage: usize, i: usize) -> Option<usize> {
    (i < *MNV2_STAGES.get(stage)?).then(|| 1 + MNV2_STAGES[..stage].iter().sum::<usize>() + i)
}

/// Splits `a.b.c.weight` into (`a.b.c`, `weight`).
fn split_leaf(name: &str) -> Option<(&str, &str)> {
    name.rsplit_once('.')
}

/// The timm name of a tensor of torchvision architecture `arch`; `None` when the name is not
/// part of that layout (the caller keeps it).
pub fn to_timm(arch: &str, name: &str) -> Option<String> {
    let (module, leaf) = split_leaf(name)?;
    let p: Vec<&str> = module.split('.').collect();
    let n = |s: &str| s.parse::<usize>().ok();
    let m: String =
        match (arch, p.as_slice()) {
            ("mobilenet_v2" | "efficientnet_b0", ["features", "0", "0"]) => "conv_stem".into(),
            ("mobilenet_v2" | "efficientnet_b0", ["features", "0", "1"]) => "bn1".into(),
            ("mobilenet_v2", ["features", "18", "0"])
            | ("efficientnet_b0", ["features", "8", "0"]) => "conv_head".into(),
            ("mobilenet_v2", ["features", "18", "1"])
            | ("efficientnet_b0", ["features", "8", "1"]) => "bn2".into(),
            ("mobilenet_v2" | "efficientnet_b0", ["classifier", "1"]) => "classifier".into(),
            ("mobilenet_v2", ["features", f, "conv", rest @ ..]) => {
                let (s, i) = mnv2_stage(n(f)?)?;
                let part = match (s, rest) {
                    (0, ["0", "0"]) => "conv_dw",
                    (0, ["0", "1"]) => "bn1",
                    (0, ["1"]) => "conv_pw",
                    (0, ["2"]) => "bn2",
                    (_, ["0", "0"]) => "conv_pw",
                    (_, ["0", "1"]) => "bn1",
                    (_, ["1", "0"]) => "conv_dw",
                    (_, ["1", "1"]) => "bn2",
                    (_, ["2"]) => "conv_pwl",
                    (_, ["3"]) => "bn3",
                    _ => return None,
                };
                format!("blocks.{s}.{i}.{part}")
            }
            ("efficientnet_b0", ["features", f, i, "block", rest @ ..]) => {
                let (s, i) = (n(f)?.checked_sub(1)?, n(i)?);
                let part = match (s, rest) {
                    (0, ["0", "0"]) => "conv_dw",
                    (0, ["0", "1"]) => "bn1",
                    (0, ["1", "fc1"]) => "se.conv_reduce",
                    (0, ["1", "fc2"]) => "se.conv_expand",
                    (0, ["2", "0"]) => "conv_pw",
                    (0, ["2", "1"]) => "bn2",
                    (_, ["0", "0"]) => "conv_pw",
                    (_, ["0", "1"]) => "bn1",
                    (_, ["1", "0"]) => "conv_dw",
                    (_, ["1", "1"]) => "bn2",
                    (_, ["2", "fc1"]) => "se.conv_reduce",
                    (_, ["2", "fc2"]) => "se.conv_expand",
                    (_, ["3", "0"]) => "conv_pwl",
                    (_, ["3", "1"]) => "bn3",
                    _ => return None,
                };
                format!("blocks.{s}.{i}.{part}")
            }
            ("convnext_tiny", ["features", "0", k @ ("0" | "1")]) => format!("stem.{k}"),
            ("convnext_tiny", ["classifier", "0"]) => "head.norm".into(),
            ("convnext_tiny", ["classifier", "2"]) => "head.fc".into(),
            ("convnext_tiny", ["features", f, k @ ("0" | "1")]) if n(f)? % 2 == 0 => {
                format!("stages.{}.downsample.{k}", n(f)? / 2)
            }
            ("convnext_tiny", ["features", f, i]) if leaf == "layer_scale" => {
                return Some(format!("stages.{}.blocks.{i}.gamma", n(f)? / 2));
            }
            ("convnext_tiny", ["features", f, i, "block", j]) => {
                let part = match *j {
                    "0" => "conv_dw",
                    "2" => "norm",
                    "3" => "mlp.fc1",
                    "5" => "mlp.fc2",
                    _ => return None,
                };
                format!("stages.{}.blocks.{i}.{part}", n(f)? / 2)
            }
            _ => return None,
        };
    Some(format!("{m}.{leaf}"))
}

/// The torchvision name of a tensor of a timm-named checkpoint of `arch` (torchvision's name
/// for the architecture); `None` when the name is not part of that layout.
pub fn to_torchvision(arch: &str, name: &str) -> Option<String> {
    let (module, leaf) = split_leaf(name)?;
    let p: Vec<&str> = module.split('.').collect();
    let n = |s: &str| s.parse::<usize>().ok();
    let (head_feature, classifier) = match arch {
        "mobilenet_v2" => (18, "classifier.1"),
        "efficientnet_b0" => (8, "classifier.1"),
        _ => (0, ""),
    };
    let m: String = match (arch, p.as_slice()) {
        ("mobilenet_v2" | "efficientnet_b0", ["conv_stem"]) => "features.0.0".into(),
        ("mobilenet_v2" | "efficientnet_b0", ["bn1"]) => "features.0.1".into(),
        ("mobilenet_v2" | "efficientnet_b0", ["conv_head"]) => format!("features.{head_feature}.0"),
        ("mobilenet_v2" | "efficientnet_b0", ["bn2"]) => format!("features.{head_feature}.1"),
        ("mobilenet_v2" | "efficientnet_b0", ["classifier"]) => classifier.into(),
        ("mobilenet_v2", ["blocks", s, i, part]) => {
            let (s, i) = (n(s)?, n(i)?);
            let f = mnv2_feature(s, i)?;
            let rest = match (s, *part) {
                (0, "conv_dw") => "0.0",
                (0, "bn1") => "0.1",
                (0, "conv_pw") => "1",
                (0, "bn2") => "2",
                (_, "conv_pw") => "0.0",
                (_, "bn1") => "0.1",
                (_, "conv_dw") => "1.0",
                (_, "bn2") => "1.1",
                (_, "conv_pwl") => "2",
                (_, "bn3") => "3",
                _ => return None,
            };
            format!("features.{f}.conv.{rest}")
        }
        ("efficientnet_b0", ["blocks", s, i, part @ ..]) => {
            let (s, i) = (n(s)?, n(i)?);
            let rest = match (s, part) {
                (0, ["conv_dw"]) => "0.0",
                (0, ["bn1"]) => "0.1",
                (0, ["se", "conv_reduce"]) => "1.fc1",
                (0, ["se", "conv_expand"]) => "1.fc2",
                (0, ["conv_pw"]) => "2.0",
                (0, ["bn2"]) => "2.1",
                (_, ["conv_pw"]) => "0.0",
                (_, ["bn1"]) => "0.1",
                (_, ["conv_dw"]) => "1.0",
                (_, ["bn2"]) => "1.1",
                (_, ["se", "conv_reduce"]) => "2.fc1",
                (_, ["se", "conv_expand"]) => "2.fc2",
                (_, ["conv_pwl"]) => "3.0",
                (_, ["bn3"]) => "3.1",
                _ => return None,
            };
            format!("features.{}.{i}.block.{rest}", s + 1)
        }
        ("convnext_tiny", ["stem", k @ ("0" | "1")]) => format!("features.0.{k}"),
        ("convnext_tiny", ["head", "norm"]) => "classifier.0".into(),
        ("convnext_tiny", ["head", "fc"]) => "classifier.2".into(),
        ("convnext_tiny", ["stages", s, "downsample", k @ ("0" | "1")]) => {
            format!("features.{}.{k}", 2 * n(s)?)
        }
        ("convnext_tiny", ["stages", s, "blocks", i]) if leaf == "gamma" => {
            return Some(format!("features.{}.{i}.layer_scale", 2 * n(s)? + 1));
        }
        ("convnext_tiny", ["stages", s, "blocks", i, part @ ..]) => {
            let j = match part {
                ["conv_dw"] => "0",
                ["norm"] => "2",
                ["mlp", "fc1"] => "3",
                ["mlp", "fc2"] => "5",
                _ => return None,
            };
            format!("features.{}.{i}.block.{j}", 2 * n(s)? + 1)
        }
        _ => return None,
    };
    Some(format!("{m}.{leaf}"))
}

/// Whether a checkpoint of `arch` is laid out with timm's names (for the architectures whose
/// layouts differ).
pub fn is_timm_layout(arch: &str, names: &[&str]) -> bool {
    match torchvision_arch(arch) {
        "mobilenet_v2" | "efficientnet_b0" => names.contains(&"conv_stem.weight"),
        "convnext_tiny" => names.contains(&"stem.0.weight"),
        _ => false,
    }
}

/// The shape a tensor has in timm's layout, from torchvision's (ConvNeXt's layer scale is
/// `[d, 1, 1]` in torchvision, `[d]` in timm).
pub fn timm_shape(timm_name: &str, shape: &[usize]) -> Vec<usize> {
    if timm_name.ends_with(".gamma") && shape.len() == 3 {
        vec![shape[0]]
    } else {
        shape.to_vec()
    }
}

/// The shape a tensor has in torchvision's layout, from timm's.
pub fn torchvision_shape(tv_name: &str, shape: &[usize]) -> Vec<usize> {
    if tv_name.ends_with(".layer_scale") && shape.len() == 1 {
        vec![shape[0], 1, 1]
    } else {
        shape.to_vec()
    }
}

/// The preprocessing each architecture's published weights expect, with timm's names for the
/// classifier and the first convolution (what `pretrained_cfg` carries in a timm
/// `config.json`). `arch` is the architecture zoo builds (torchvision's name).
pub fn pretrained_cfg(arch: &str) -> zoo_card::PretrainedCfg {
    use zoo_card::PretrainedCfg;
    let cfg = match arch {
        // Inputs in [-1, 1], as the packaged EfficientNet-Lite0 weights were trained.
        "efficientnet_lite0" => PretrainedCfg {
            mean: [0.498; 3],
            std: [0.502; 3],
            classifier: Some("_fc".into()),
            first_conv: Some("_conv_stem".into()),
            ..PretrainedCfg::default()
        },
        // timm's ViT weights: inputs in [-1, 1], bicubic, crop 0.9.
        a if a.starts_with("vit_") => PretrainedCfg {
            mean: [0.5; 3],
            std: [0.5; 3],
            crop_pct: 0.9,
            interpolation: "bicubic".into(),
            classifier: Some("head".into()),
            first_conv: Some("patch_embed.proj".into()),
            ..PretrainedCfg::default()
        },
        // torchvision's ConvNeXt weights: resize 236, crop 224.
        a if a.starts_with("convnext") => PretrainedCfg {
            crop_pct: 224.0 / 236.0,
            classifier: Some("classifier.2".into()),
            first_conv: Some("features.0.0".into()),
            ..PretrainedCfg::default()
        },
        // torchvision's EfficientNet-B0 weights: bicubic resize 256, crop 224.
        "efficientnet_b0" => PretrainedCfg {
            interpolation: "bicubic".into(),
            classifier: Some("classifier.1".into()),
            first_conv: Some("features.0.0".into()),
            ..PretrainedCfg::default()
        },
        a if a.starts_with("resnet") => PretrainedCfg {
            classifier: Some("fc".into()),
            first_conv: Some("conv1".into()),
            ..PretrainedCfg::default()
        },
        _ => PretrainedCfg {
            classifier: Some("classifier.1".into()),
            first_conv: Some("features.0.0".into()),
            ..PretrainedCfg::default()
        },
    };
    with_timm_names(arch, cfg)
}

/// `pretrained_cfg` with its `classifier` and `first_conv` module names in timm's layout
/// (timm finds the head by this name when asked for a different `num_classes`).
pub fn with_timm_names(arch: &str, mut cfg: zoo_card::PretrainedCfg) -> zoo_card::PretrainedCfg {
    let rename = |m: &mut Option<String>| {
        if let Some(name) = m.as_deref()
            && let Some(t) = to_timm(arch, &format!("{name}.weight"))
            && let Some(module) = t.strip_suffix(".weight")
        {
            *m = Some(module.to_string());
        }
    };
    rename(&mut cfg.classifier);
    rename(&mut cfg.first_conv);
    cfg
}
