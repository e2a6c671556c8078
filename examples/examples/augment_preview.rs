//! See what `ImageDataGenerator` does: augment 8 MNIST digits with the seed
//! CNN's parameters (rotation 10 degrees, zoom 0.1, width/height shift 0.1)
//! and write a PNG grid -- per row the original digit (first column), then 7
//! random augmentations of it.
//!
//! `cargo run --release -p keel-examples --example augment_preview -- [--out augment_preview.png] [--seed 0] [--scale 3]`

use keel::data::augment::ImageDataGenerator;
use keel::data::image::save_png_grid;
use keel::prelude::*;
use keel_examples::Args;

const DIGITS: usize = 8;
const COPIES: usize = 7;

fn main() {
    keel_examples::run_main(run)
}

fn run() -> keel::Result<()> {
    let args = Args::from_env();
    let out = args.get_str("out").unwrap_or_else(|| "augment_preview.png".into());
    let seed: u64 = args.get("seed", 0);
    let scale: usize = args.get("scale", 3).max(1);

    // The first example of each digit 0..8, as F32 [8, 28, 28, 1] in 0..=255.
    let ((x_train, y_train), _) = keel::datasets::mnist::load()?;
    let labels = y_train.to_vec::<u8>()?;
    let pixels = x_train.to_vec::<u8>()?;
    let (h, w) = (x_train.dims()[1], x_train.dims()[2]);
    let mut picked = Vec::with_capacity(DIGITS * h * w);
    for digit in 0..DIGITS as u8 {
        let i = labels.iter().position(|&l| l == digit).expect("every digit occurs in MNIST");
        picked.extend(pixels[i * h * w..(i + 1) * h * w].iter().map(|&p| p as f32));
    }
    let originals = Tensor::from_vec(picked, (DIGITS, h, w, 1))?;

    let datagen =
        ImageDataGenerator::new().rotation_range(10.0).zoom_range(0.1).width_shift_range(0.1).height_shift_range(0.1);
    // Epoch k draws a fresh transform for every image.
    let copies: Vec<Vec<f32>> = (0..COPIES)
        .map(|k| Ok(datagen.augment_batch(&originals, seed, k)?.to_vec::<f32>()?))
        .collect::<keel::Result<_>>()?;

    // Row i: original i, then its COPIES augmentations; nearest-neighbour upscaled.
    let orig = originals.to_vec::<f32>()?;
    let (sh, sw) = (h * scale, w * scale);
    let mut tiles = Vec::with_capacity(DIGITS * (COPIES + 1) * sh * sw);
    for i in 0..DIGITS {
        let row = std::iter::once(&orig).chain(&copies);
        for src in row {
            let img = &src[i * h * w..(i + 1) * h * w];
            for y in 0..sh {
                tiles.extend((0..sw).map(|x| img[(y / scale) * w + x / scale]));
            }
        }
    }
    let tiles = Tensor::from_vec(tiles, (DIGITS * (COPIES + 1), sh, sw, 1))?;
    save_png_grid(&out, &tiles, COPIES + 1)?;
    println!(
        "wrote {out}: {DIGITS} digits x (original + {COPIES} augmentations), rotation 10, zoom 0.1, shifts 0.1, seed {seed}"
    );
    Ok(())
}
