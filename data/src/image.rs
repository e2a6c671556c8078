//! Images: a Keras-style `image_dataset_from_directory` loader, image
//! decoding and resizing, and PNG writing (single images and grids).
//!
//! ```no_run
//! use keel_data::image::{image_dataset_from_directory, Subset};
//! use keel_data::DataLoader;
//! # fn main() -> keel_data::Result<()> {
//! // flowers/daisy/*.jpg, flowers/roses/*.jpg, ... : one folder per class.
//! let train = image_dataset_from_directory("flowers")
//!     .image_size(180, 180)
//!     .validation_split(0.2)
//!     .subset(Subset::Training)
//!     .seed(123)
//!     .load()?;
//! assert_eq!(train.x.dims()[1..], [180, 180, 3]); // F32, values 0..=255
//! println!("classes: {:?}", train.class_names);  // sorted: label i = class_names[i]
//! let loader = DataLoader::from_tensors(&train.x, &train.y, 32)?.shuffle(true);
//! # Ok(()) }
//! ```
//!
//! Decoding handles PNG and JPEG (the `image` crate). Resizing is bilinear
//! with half-pixel centres and no antialiasing, as `tf.image.resize` (Keras's
//! default `interpolation="bilinear"`). Pixel values stay in `0..=255`, as in
//! Keras; rescale them in the model or with
//! [`ImageDataGenerator::rescale`](crate::augment::ImageDataGenerator::rescale).

use crate::folder::{folder_builders, FileKind, FolderOptions};
use crate::{Error, Result};
use keel_tensor::{DType, Tensor};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Extensions the loader decodes (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];
/// The operation errors name.
const OP: &str = "image_dataset_from_directory";
/// Extensions Keras also loads but keel cannot decode (reported as errors, not skipped).
const UNSUPPORTED_EXTENSIONS: [&str; 2] = ["bmp", "gif"];

/// How many channels decoded images get (Keras `color_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMode {
    /// 1 channel: luma `0.299 R + 0.587 G + 0.114 B` (ITU-R 601, as PIL and libjpeg), rounded.
    Grayscale,
    /// 3 channels (alpha dropped, gray replicated); Keras's default.
    #[default]
    Rgb,
    /// 4 channels (opaque alpha added where the file has none).
    Rgba,
}

impl ColorMode {
    /// The number of channels: 1, 3 or 4.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Grayscale => 1,
            ColorMode::Rgb => 3,
            ColorMode::Rgba => 4,
        }
    }
}

pub use crate::folder::{LabelMode, Subset};

/// Images and labels loaded from a directory tree.
#[derive(Debug, Clone)]
pub struct ImageDataset {
    /// F32 `[N, height, width, channels]`, values in `0..=255`.
    pub x: Tensor,
    /// Labels, as set by [`LabelMode`].
    pub y: Tensor,
    /// Class names (the non-hidden subfolders, or those set with `class_names`); label `i` is `class_names[i]`.
    pub class_names: Vec<String>,
    /// The file each image came from, in the order of `x`.
    pub file_paths: Vec<PathBuf>,
}

/// Start configuring a Keras-style `image_dataset_from_directory(dir)` load.
///
/// `dir` holds one subfolder per class (searched recursively for `.png`,
/// `.jpg` and `.jpeg` files; files directly in `dir` are ignored). Class
/// names are the subfolder names sorted alphabetically, hidden ones (names
/// starting with `.`, such as `.ipynb_checkpoints`) skipped as in Keras, or
/// those set with [`ImageFolder::class_names`]; label `i` means
/// `class_names[i]`. Call [`ImageFolder::load`] (or
/// [`ImageFolder::load_both`]) to read the images.
pub fn image_dataset_from_directory(dir: impl AsRef<Path>) -> ImageFolder {
    ImageFolder::new(dir)
}

/// Options of an image-folder load (see [`image_dataset_from_directory`]); Keras's defaults.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    opts: FolderOptions,
    image_size: (usize, usize),
    color_mode: ColorMode,
}

/// The files [`image_dataset_from_directory`] reads.
const IMAGES: FileKind =
    FileKind { what: "images", extensions: &IMAGE_EXTENSIONS, unsupported: &UNSUPPORTED_EXTENSIONS };

folder_builders!(ImageFolder, "images");

impl ImageFolder {
    /// Load from `dir` with Keras's defaults: 256x256, RGB, int labels, shuffled, no split.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        ImageFolder { opts: FolderOptions::new(dir), image_size: (256, 256), color_mode: ColorMode::Rgb }
    }

    /// Resize every image to `height x width` (bilinear, like `tf.image.resize`).
    pub fn image_size(mut self, height: usize, width: usize) -> Self {
        self.image_size = (height, width);
        self
    }

    /// Grayscale (1 channel), RGB (3, default) or RGBA (4).
    pub fn color_mode(mut self, mode: ColorMode) -> Self {
        self.color_mode = mode;
        self
    }

    /// Load the images: all of them, or the chosen [`subset`](Self::subset) of a split.
    pub fn load(&self) -> Result<ImageDataset> {
        self.check_size()?;
        let (paths, labels, class_names) = self.opts.load_index(OP, &IMAGES)?;
        self.materialize(paths, labels, class_names)
    }

    /// Load both parts of a `validation_split`: `(training, validation)` (Keras `subset="both"`).
    pub fn load_both(&self) -> Result<(ImageDataset, ImageDataset)> {
        self.check_size()?;
        let ((tp, tl), (vp, vl), class_names) = self.opts.load_both_index(OP, &IMAGES)?;
        Ok((self.materialize(tp, tl, class_names.clone())?, self.materialize(vp, vl, class_names)?))
    }

    fn check_size(&self) -> Result<()> {
        let (h, w) = self.image_size;
        if h == 0 || w == 0 {
            return Err(Error::invalid(OP, format!("image_size must be positive, got ({h}, {w})")));
        }
        Ok(())
    }

    /// Decode and resize `paths` (in parallel) and build the tensors.
    fn materialize(&self, paths: Vec<PathBuf>, labels: Vec<usize>, class_names: Vec<String>) -> Result<ImageDataset> {
        let (h, w) = self.image_size;
        let c = self.color_mode.channels();
        let decoded: Vec<Result<Vec<f32>>> = paths
            .par_iter()
            .map(|p| {
                let (img, ih, iw) = read_pixels(p, self.color_mode)?;
                Ok(resize_hwc(&img, ih, iw, c, h, w))
            })
            .collect();
        let mut x = Vec::with_capacity(paths.len() * h * w * c);
        for d in decoded {
            x.extend_from_slice(&d?); // the first failing file, in order
        }
        let n = paths.len();
        let x = Tensor::from_vec(x, (n, h, w, c))?;
        let y = self.opts.label_tensor(&labels, class_names.len())?;
        Ok(ImageDataset { x, y, class_names, file_paths: paths })
    }
}

/// Decode one file to `(pixels as f32 0..=255, height, width)` with `mode`'s channels.
fn read_pixels(path: &Path, mode: ColorMode) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_pixels(&bytes, mode, &path.display().to_string())
}

fn decode_pixels(bytes: &[u8], mode: ColorMode, name: &str) -> Result<(Vec<f32>, usize, usize)> {
    let img = ::image::load_from_memory(bytes).map_err(|e| {
        Error::format(name, format!("cannot decode the image: {e}; the file is corrupt or not a PNG/JPEG"))
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let px: Vec<f32> = match mode {
        ColorMode::Rgb => img.to_rgb8().into_raw().into_iter().map(f32::from).collect(),
        ColorMode::Rgba => img.to_rgba8().into_raw().into_iter().map(f32::from).collect(),
        ColorMode::Grayscale => {
            if img.color().has_color() {
                img.to_rgb8()
                    .into_raw()
                    .chunks_exact(3)
                    .map(|p| {
                        // PIL's integer ITU-R 601 luma.
                        let l =
                            (u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000) >> 16;
                        l as f32
                    })
                    .collect()
            } else {
                img.to_luma8().into_raw().into_iter().map(f32::from).collect()
            }
        }
    };
    Ok((px, h, w))
}

/// Read one PNG or JPEG file as an F32 `[height, width, channels]` tensor, values `0..=255`.
///
/// With `size = Some((h, w))` the image is resized bilinearly (as `tf.image.resize`).
pub fn read_image(path: impl AsRef<Path>, mode: ColorMode, size: Option<(usize, usize)>) -> Result<Tensor> {
    let path = path.as_ref();
    let (px, h, w) = read_pixels(path, mode)?;
    let c = mode.channels();
    Ok(match size {
        Some((oh, ow)) if oh > 0 && ow > 0 => Tensor::from_vec(resize_hwc(&px, h, w, c, oh, ow), (oh, ow, c))?,
        Some((oh, ow)) => return Err(Error::invalid("read_image", format!("size must be positive, got ({oh}, {ow})"))),
        None => Tensor::from_vec(px, (h, w, c))?,
    })
}

/// Resize `[H, W, C]` or `[N, H, W, C]` images to `height x width`, bilinearly (F32 result).
///
/// Same as `tf.image.resize(images, size, "bilinear")` (half-pixel centres,
/// no antialiasing), which Keras's image loaders use.
pub fn resize_bilinear(images: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    const OP: &str = "resize_bilinear";
    if height == 0 || width == 0 {
        return Err(Error::invalid(OP, format!("the size must be positive, got ({height}, {width})")));
    }
    let (n, h, w, c) = match *images.dims() {
        [h, w, c] => (None, h, w, c),
        [n, h, w, c] => (Some(n), h, w, c),
        _ => return Err(Error::invalid(OP, format!("expected [H, W, C] or [N, H, W, C], got {:?}", images.dims()))),
    };
    if h == 0 || w == 0 || c == 0 {
        return Err(Error::invalid(OP, format!("cannot resize an empty image of shape {:?}", images.dims())));
    }
    let v = images.to_dtype(DType::F32)?.to_vec::<f32>()?;
    let out: Vec<f32> = v.chunks(h * w * c).flat_map(|img| resize_hwc(img, h, w, c, height, width)).collect();
    Ok(match n {
        Some(n) => Tensor::from_vec(out, (n, height, width, c))?,
        None => Tensor::from_vec(out, (height, width, c))?,
    })
}

/// TensorFlow's bilinear resize (half-pixel centres) of one HWC image.
fn resize_hwc(src: &[f32], h: usize, w: usize, c: usize, oh: usize, ow: usize) -> Vec<f32> {
    if (h, w) == (oh, ow) {
        return src.to_vec();
    }
    // (lower, upper, lerp) per output coordinate, as TF's compute_interpolation_weights.
    let weights = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let x = (o as f32 + 0.5) * scale - 0.5;
                let fl = x.floor();
                let lo = fl.max(0.0) as usize;
                let hi = (x.ceil().max(0.0) as usize).min(n_in - 1);
                (lo.min(n_in - 1), hi, x - fl)
            })
            .collect()
    };
    let ys = weights(h, oh);
    let xs = weights(w, ow);
    let mut out = Vec::with_capacity(oh * ow * c);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            for ch in 0..c {
                let at = |y: usize, x: usize| src[(y * w + x) * c + ch];
                let top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * lx;
                let bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * lx;
                out.push(top + (bottom - top) * ly);
            }
        }
    }
    out
}

/// The bytes of a PNG holding `image`: `[H, W]` or `[H, W, 1|3|4]` (gray, RGB, RGBA).
///
/// U8 pixels are written as they are; other dtypes are rounded and clamped to
/// `0..=255` (NaN becomes 0), so pass values in Keras's `0..=255` range.
pub fn encode_png(image: &Tensor) -> Result<Vec<u8>> {
    use ::image::ImageEncoder;
    const OP: &str = "encode_png";
    let (h, w, c) = match *image.dims() {
        [h, w] => (h, w, 1),
        [h, w, c] if matches!(c, 1 | 3 | 4) => (h, w, c),
        _ => {
            return Err(Error::invalid(
                OP,
                format!("expected an image [H, W] or [H, W, 1|3|4], got shape {:?}", image.dims()),
            ))
        }
    };
    let too_big = |d: usize| u32::try_from(d).ok().filter(|&d| d > 0).is_none();
    if too_big(h) || too_big(w) {
        return Err(Error::invalid(OP, format!("image size {h}x{w} cannot be a PNG (1..=2^32-1 pixels per side)")));
    }
    let bytes: Vec<u8> = if image.dtype() == DType::U8 {
        image.to_vec::<u8>()?
    } else {
        image.to_dtype(DType::F32)?.to_vec::<f32>()?.into_iter().map(to_u8).collect()
    };
    let color = match c {
        1 => ::image::ExtendedColorType::L8,
        3 => ::image::ExtendedColorType::Rgb8,
        _ => ::image::ExtendedColorType::Rgba8,
    };
    let mut out = Vec::new();
    ::image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&bytes, w as u32, h as u32, color)
        .map_err(|e| Error::invalid(OP, format!("PNG encoding failed: {e}")))?;
    Ok(out)
}

fn to_u8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        v.round().clamp(0.0, 255.0) as u8
    }
}

/// Write `image` (see [`encode_png`]) as a PNG file, atomically (temp file + fsync + rename).
pub fn write_png(path: impl AsRef<Path>, image: &Tensor) -> Result<()> {
    let bytes = encode_png(image)?;
    crate::fsio::atomic_write(path.as_ref(), &bytes)
}

/// Tile `images` `[N, H, W, C]` into one `[H', W', C]` image, `cols` per row, row-major.
///
/// Tiles are separated (and framed) by `padding` pixels of `pad_value`;
/// empty cells of the last row are filled with `pad_value` too. The result
/// is F32 (values as in `images`).
pub fn image_grid(images: &Tensor, cols: usize, padding: usize, pad_value: f32) -> Result<Tensor> {
    const OP: &str = "image_grid";
    let [n, h, w, c] = *images.dims() else {
        return Err(Error::invalid(OP, format!("expected images [N, H, W, C], got shape {:?}", images.dims())));
    };
    if n == 0 || h == 0 || w == 0 || c == 0 || cols == 0 {
        return Err(Error::invalid(
            OP,
            format!("need at least one non-empty image and cols > 0; got shape {:?}, cols {cols}", images.dims()),
        ));
    }
    let cols = cols.min(n);
    let rows = n.div_ceil(cols);
    let gh = rows * (h + padding) + padding;
    let gw = cols * (w + padding) + padding;
    let v = images.to_dtype(DType::F32)?.to_vec::<f32>()?;
    let mut g = vec![pad_value; gh * gw * c];
    for (i, img) in v.chunks_exact(h * w * c).enumerate() {
        let (r, col) = (i / cols, i % cols);
        let (y0, x0) = (padding + r * (h + padding), padding + col * (w + padding));
        for y in 0..h {
            let dst = ((y0 + y) * gw + x0) * c;
            g[dst..dst + w * c].copy_from_slice(&img[y * w * c..(y + 1) * w * c]);
        }
    }
    Ok(Tensor::from_vec(g, (gh, gw, c))?)
}

/// Write `images` `[N, H, W, C]` as one PNG grid, `cols` per row (2-pixel mid-gray separators).
///
/// Values should be in `0..=255` (see [`encode_png`]); C is 1, 3 or 4.
pub fn save_png_grid(path: impl AsRef<Path>, images: &Tensor, cols: usize) -> Result<()> {
    write_png(path, &image_grid(images, cols, 2, 128.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_matches_tensorflow_half_pixel() {
        // tf.image.resize([[0, 1], [2, 3]], (4, 4)) -- known TF output.
        let out = resize_hwc(&[0.0, 1.0, 2.0, 3.0], 2, 2, 1, 4, 4);
        let want = [
            0.0, 0.25, 0.75, 1.0, //
            0.5, 0.75, 1.25, 1.5, //
            1.5, 1.75, 2.25, 2.5, //
            2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(out, want);
        // Downscale 4 -> 2 samples between pixels 0/1 and 2/3 (no antialiasing).
        let out = resize_hwc(&[0.0, 10.0, 20.0, 30.0], 1, 4, 1, 1, 2);
        assert_eq!(out, vec![5.0, 25.0]);
        // Same size is the identity; 1 pixel stretches.
        assert_eq!(resize_hwc(&[1.0, 2.0], 1, 1, 2, 1, 1), vec![1.0, 2.0]);
        assert_eq!(resize_hwc(&[7.0], 1, 1, 1, 3, 2), vec![7.0; 6]);
    }
}
