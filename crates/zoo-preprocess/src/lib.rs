//! Preprocessing as a model's card describes it, in one place: `predict`, `embed`,
//! `finetune` and `eval` all call this.
//!
//! Images follow timm/torchvision evaluation transforms: decode (JPEG, PNG, WebP; greyscale
//! and alpha become 3-channel RGB), resize the shorter side to `floor(size / crop_pct)` with
//! the configured interpolation (antialiased when shrinking, as PIL does), centre-crop to
//! `input_size`, scale to [0, 1], normalise by `mean`/`std`. The output is CHW `f32`.

mod resample;
pub mod text;

use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use zoo_card::PretrainedCfg;

/// Why an input could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("{path}: cannot read: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: not a readable image (JPEG, PNG or WebP): {reason}")]
    Decode { path: String, reason: String },
    #[error("interpolation `{0}` is not supported (bilinear, bicubic, nearest)")]
    Interpolation(String),
    #[error("input_size {0:?}: expected [3, height, width] with positive sizes")]
    InputSize([u32; 3]),
    #[error("crop_pct {0} must be in (0, 1]")]
    CropPct(f64),
    #[error("crop_mode `{0}` is not supported: zoo applies timm's `center` crop only")]
    CropMode(String),
    #[error("{path}: tokenizer: {reason}")]
    Tokenizer { path: String, reason: String },
    #[error("input {index} is {tokens} tokens, over the model's limit of {limit} (--no-truncate)")]
    TooLong {
        index: usize,
        tokens: usize,
        limit: usize,
    },
}

/// Image preprocessing, resolved from a `pretrained_cfg`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTransform {
    pub height: u32,
    pub width: u32,
    pub crop_pct: f64,
    pub filter: FilterType,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl ImageTransform {
    /// Every field that decides the pixels, spelled out exactly (floats by their bits): what
    /// a cache of preprocessed values is keyed by. Not `Debug`, whose format may change.
    pub fn cache_key(&self) -> String {
        let filter = match self.filter {
            FilterType::Nearest => "nearest",
            FilterType::Triangle => "bilinear",
            FilterType::CatmullRom => "bicubic",
            FilterType::Gaussian => "gaussian",
            FilterType::Lanczos3 => "lanczos3",
        };
        let bits = |v: &[f32; 3]| {
            format!(
                "{:08x}{:08x}{:08x}",
                v[0].to_bits(),
                v[1].to_bits(),
                v[2].to_bits()
            )
        };
        format!(
            "{}x{}|crop {:016x}|{filter}|mean {}|std {}",
            self.height,
            self.width,
            self.crop_pct.to_bits(),
            bits(&self.mean),
            bits(&self.std)
        )
    }

    pub fn from_cfg(cfg: &PretrainedCfg) -> Result<Self, PreprocessError> {
        let [c, h, w] = cfg.input_size;
        if c != 3 || h == 0 || w == 0 {
            return Err(PreprocessError::InputSize(cfg.input_size));
        }
        if !(cfg.crop_pct > 0.0 && cfg.crop_pct <= 1.0) {
            return Err(PreprocessError::CropPct(cfg.crop_pct));
        }
        // timm's `crop_mode`: `center` (its default) is what this transform does; `squash` and
        // `border` would give other pixels, so they are refused rather than ignored.
        if let Some(m) = cfg.crop_mode.as_deref()
            && m != "center"
        {
            return Err(PreprocessError::CropMode(m.to_string()));
        }
        let filter = match cfg.interpolation.as_str() {
            "bilinear" => FilterType::Triangle,
            "bicubic" => FilterType::CatmullRom,
            "nearest" => FilterType::Nearest,
            other => return Err(PreprocessError::Interpolation(other.to_string())),
        };
        let f = |a: [f64; 3]| a.map(|x| x as f32);
        Ok(ImageTransform {
            height: h,
            width: w,
            crop_pct: cfg.crop_pct,
            filter,
            mean: f(cfg.mean),
            std: f(cfg.std),
        })
    }

    /// The same transform at another resolution (fine-tuning at 96², for example).
    pub fn with_size(mut self, height: u32, width: u32) -> Self {
        self.height = height;
        self.width = width;
        self
    }

    /// Reads and decodes an image file.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>, PreprocessError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| PreprocessError::Io {
            path: name.clone(),
            error,
        })?;
        self.apply(&decode(&bytes, &name)?)
    }

    /// Resize shorter side, centre crop, normalise: CHW `f32` of `3 × height × width`.
    pub fn apply(&self, img: &RgbImage) -> Result<Vec<f32>, PreprocessError> {
        let (w, h) = img.dimensions();
        // timm: scale_size = floor(img_size / crop_pct), for the shorter side.
        let target_short = (f64::from(self.height.min(self.width)) / self.crop_pct).floor() as u32;
        // torchvision's Resize(int): the long side is int(size * long / short).
        let (nw, nh) = if w <= h {
            (
                target_short,
                ((u64::from(target_short) * u64::from(h)) / u64::from(w.max(1))) as u32,
            )
        } else {
            (
                ((u64::from(target_short) * u64::from(w)) / u64::from(h.max(1))) as u32,
                target_short,
            )
        };
        let resized = if (nw, nh) == (w, h) {
            img.clone()
        } else {
            resample::resize(img, nw.max(1), nh.max(1), self.filter)
        };
        let (rw, rh) = resized.dimensions();
        // torchvision CenterCrop: offsets int(round((size - crop) / 2)), padding when smaller.
        // Python rounds halves to even (109 → 96 crops from row 6, not 7).
        let top = ((f64::from(rh) - f64::from(self.height)) / 2.0).round_ties_even() as i64;
        let left = ((f64::from(rw) - f64::from(self.width)) / 2.0).round_ties_even() as i64;
        let plane = (self.height * self.width) as usize;
        let mut out = vec![0f32; 3 * plane];
        for y in 0..self.height as i64 {
            for x in 0..self.width as i64 {
                let (sy, sx) = (y + top, x + left);
                let px = if sy >= 0 && sx >= 0 && (sy as u32) < rh && (sx as u32) < rw {
                    resized.get_pixel(sx as u32, sy as u32).0
                } else {
                    [0, 0, 0]
                };
                let i = (y as usize) * self.width as usize + x as usize;
                for c in 0..3 {
                    out[c * plane + i] = (f32::from(px[c]) / 255.0 - self.mean[c]) / self.std[c];
                }
            }
        }
        Ok(out)
    }
}

/// The random choices of one training-time augmentation, drawn by the caller (so runs are
/// reproducible from a seed): torchvision's `RandomResizedCrop` (area fraction and log aspect
/// ratio, position) and `RandomHorizontalFlip`. All fields are uniform draws in [0, 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentDraw {
    pub area: f64,
    pub ratio: f64,
    pub x: f64,
    pub y: f64,
    pub flip: f64,
}

impl ImageTransform {
    /// Training transform: a random crop covering 35–100 % of the image with aspect ratio in
    /// [3/4, 4/3], resized to the input size, flipped half of the time, normalised.
    pub fn augment(&self, img: &RgbImage, d: AugmentDraw) -> Result<Vec<f32>, PreprocessError> {
        let (w, h) = img.dimensions();
        let area = f64::from(w) * f64::from(h) * (0.35 + 0.65 * d.area);
        let log_r = (0.75f64).ln() + d.ratio * ((4.0f64 / 3.0).ln() - (0.75f64).ln());
        let r = log_r.exp();
        let cw = ((area * r).sqrt().round() as u32).clamp(1, w);
        let ch = ((area / r).sqrt().round() as u32).clamp(1, h);
        let x0 = ((f64::from(w - cw) * d.x) as u32).min(w - cw);
        let y0 = ((f64::from(h - ch) * d.y) as u32).min(h - ch);
        let crop = image::imageops::crop_imm(img, x0, y0, cw, ch).to_image();
        let mut resized = resample::resize(&crop, self.width, self.height, self.filter);
        if d.flip < 0.5 {
            image::imageops::flip_horizontal_in_place(&mut resized);
        }
        let plane = (self.height * self.width) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, px) in resized.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (f32::from(px.0[c]) / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Ok(out)
    }
}

/// Decodes JPEG, PNG or WebP bytes to RGB (greyscale and alpha dropped to 3 channels).
pub fn decode(bytes: &[u8], name: &str) -> Result<RgbImage, PreprocessError> {
    let img: DynamicImage =
        image::load_from_memory(bytes).map_err(|e| PreprocessError::Decode {
            path: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(img.to_rgb8())
}
