//! Resizing that gives Pillow's pixels (`Image.resize`, which torchvision's and timm's
//! transforms call): separable convolution with the filter's support widened by the scale
//! when shrinking (antialiasing), weights normalised and turned into 22-bit fixed point,
//! the horizontal pass first with 8-bit rounding before the vertical one. The `image`
//! crate's float resampler was up to one grey level off on a tenth of the pixels.

use image::RgbImage;
use image::imageops::FilterType;

/// Fractional bits of the fixed-point weights (8-bit pixels, 2 bits of headroom).
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Keys' cubic with a = -0.5 (Pillow's BICUBIC, Catmull-Rom).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output position: the first input index and the fixed-point weights from it.
fn weights(
    input: u32,
    output: u32,
    filter: fn(f64) -> f64,
    support: f64,
) -> Vec<(usize, Vec<i32>)> {
    let scale = f64::from(input) / f64::from(output);
    let filter_scale = scale.max(1.0);
    let support = support * filter_scale;
    (0..output)
        .map(|o| {
            let center = (f64::from(o) + 0.5) * scale;
            // C casts truncate towards zero.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(i64::from(input)) as usize;
            let w: Vec<f64> = (lo..hi.max(lo))
                .map(|i| filter((i as f64 - center + 0.5) / filter_scale))
                .collect();
            let sum: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if sum != 0.0 { k / sum } else { k };
                    let v = k * f64::from(1u32 << PRECISION_BITS);
                    (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
                })
                .collect();
            (lo, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One pass along x (`horizontal`) or y, 3 channels, 8-bit rounding.
fn pass(
    src: &RgbImage,
    out_w: u32,
    out_h: u32,
    taps: &[(usize, Vec<i32>)],
    horizontal: bool,
) -> RgbImage {
    let (w, _) = src.dimensions();
    let raw = src.as_raw();
    let mut out = vec![0u8; (out_w * out_h * 3) as usize];
    for y in 0..out_h as usize {
        for x in 0..out_w as usize {
            let (first, k) = &taps[if horizontal { x } else { y }];
            for c in 0..3 {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (j, &kj) in k.iter().enumerate() {
                    let (sx, sy) = if horizontal {
                        (first + j, y)
                    } else {
                        (x, first + j)
                    };
                    acc += i64::from(raw[(sy * w as usize + sx) * 3 + c]) * i64::from(kj);
                }
                out[(y * out_w as usize + x) * 3 + c] = clip8(acc);
            }
        }
    }
    RgbImage::from_raw(out_w, out_h, out).unwrap_or_default()
}

/// `img` resized to `width × height` as Pillow resizes it with the matching filter
/// (Triangle = BILINEAR, CatmullRom = BICUBIC, Nearest = NEAREST).
pub fn resize(img: &RgbImage, width: u32, height: u32, filter: FilterType) -> RgbImage {
    let (w, h) = img.dimensions();
    if (w, h) == (width, height) {
        return img.clone();
    }
    let (f, support): (fn(f64) -> f64, f64) = match filter {
        FilterType::Triangle => (bilinear, 1.0),
        FilterType::CatmullRom => (bicubic, 2.0),
        FilterType::Nearest => {
            // Pillow's NEAREST: the input pixel under the output pixel's centre.
            return RgbImage::from_fn(width, height, |x, y| {
                let sx = ((f64::from(x) + 0.5) * f64::from(w) / f64::from(width)) as u32;
                let sy = ((f64::from(y) + 0.5) * f64::from(h) / f64::from(height)) as u32;
                *img.get_pixel(sx.min(w - 1), sy.min(h - 1))
            });
        }
        other => return image::imageops::resize(img, width, height, other),
    };
    let across = if w != width {
        pass(img, width, h, &weights(w, width, f, support), true)
    } else {
        img.clone()
    };
    if h != height {
        pass(
            &across,
            width,
            height,
            &weights(h, height, f, support),
            false,
        )
    } else {
        across
    }
}
