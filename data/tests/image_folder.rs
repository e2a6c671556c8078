//! The image-folder loader, image decoding/resizing and PNG writing, on
//! synthetic PNG/JPEG trees written here with the `image` crate.
#![cfg(feature = "image")]

mod common;
use keel_data::image::{
    encode_png, image_dataset_from_directory, image_grid, read_image, resize_bilinear, save_png_grid, write_png,
    ColorMode, LabelMode, Subset,
};
use keel_tensor::{DType, Tensor};
use std::path::Path;

/// A solid `w x h` RGB image of `rgb` saved as PNG (or JPEG by extension).
fn solid(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb)).save(path).unwrap();
}

/// The test tree:
/// birds/b0.jpg; cats/c0.png c1.png c2.png; dogs/d0.png dogs/deep/d1.png
/// plus files the loader must ignore.
fn tree(name: &str) -> common::TempDir {
    let d = common::temp_dir(name);
    solid(&d.join("birds/b0.jpg"), 8, 8, [200, 100, 50]);
    for (i, v) in [10u8, 20, 30].iter().enumerate() {
        solid(&d.join(format!("cats/c{i}.png")), 6, 4, [*v, 0, 255]);
    }
    solid(&d.join("dogs/d0.png"), 3, 5, [0, 128, 0]);
    solid(&d.join("dogs/deep/d1.PNG"), 2, 2, [1, 2, 3]);
    std::fs::write(d.join("dogs/notes.txt"), "not an image").unwrap();
    std::fs::write(d.join("top_level.png"), "ignored: not in a class folder").unwrap();
    d
}

fn pixel(x: &Tensor, i: usize) -> Vec<f32> {
    let d = x.dims();
    let per = d[1] * d[2] * d[3];
    x.to_vec::<f32>().unwrap()[i * per..i * per + d[3]].to_vec()
}

#[test]
fn loads_classes_in_alphabetical_order() {
    let d = tree("if-basic");
    let ds = image_dataset_from_directory(&d).image_size(4, 4).shuffle(false).load().unwrap();
    assert_eq!(ds.class_names, ["birds", "cats", "dogs"]);
    assert_eq!(ds.x.dims(), &[6, 4, 4, 3]);
    assert_eq!(ds.x.dtype(), DType::F32);
    assert_eq!(ds.y.dtype(), DType::I64);
    assert_eq!(ds.y.to_vec::<i64>().unwrap(), vec![0, 1, 1, 1, 2, 2]);
    let names: Vec<String> = ds.file_paths.iter().map(|p| p.strip_prefix(&d).unwrap().display().to_string()).collect();
    assert_eq!(names, ["birds/b0.jpg", "cats/c0.png", "cats/c1.png", "cats/c2.png", "dogs/d0.png", "dogs/deep/d1.PNG"]);
    // Solid colours survive resizing exactly; values are 0..=255 like Keras.
    assert_eq!(pixel(&ds.x, 1), vec![10.0, 0.0, 255.0]);
    assert_eq!(pixel(&ds.x, 3), vec![30.0, 0.0, 255.0]);
    assert_eq!(pixel(&ds.x, 4), vec![0.0, 128.0, 0.0]);
    assert_eq!(pixel(&ds.x, 5), vec![1.0, 2.0, 3.0]);
    let jpeg = pixel(&ds.x, 0);
    for (a, b) in jpeg.iter().zip([200.0, 100.0, 50.0]) {
        assert!((a - b).abs() <= 3.0, "jpeg {jpeg:?}");
    }
    let all = ds.x.to_vec::<f32>().unwrap();
    assert!(all.iter().all(|v| (0.0..=255.0).contains(v)));
}

#[test]
fn color_and_label_modes() {
    let d = tree("if-modes");
    let g = image_dataset_from_directory(&d)
        .image_size(2, 3)
        .color_mode(ColorMode::Grayscale)
        .label_mode(LabelMode::Categorical)
        .shuffle(false)
        .load()
        .unwrap();
    assert_eq!(g.x.dims(), &[6, 2, 3, 1]);
    // PIL-style ITU-R 601 luma of (10, 0, 255) and (0, 128, 0).
    assert_eq!(pixel(&g.x, 1), vec![((10 * 19595 + 255 * 7471 + 0x8000) >> 16) as f32]);
    assert_eq!(pixel(&g.x, 4), vec![((128 * 38470 + 0x8000) >> 16) as f32]);
    assert_eq!(g.y.dims(), &[6, 3]);
    assert_eq!(g.y.to_vec::<f32>().unwrap()[..6], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);

    let a =
        image_dataset_from_directory(&d).image_size(2, 2).color_mode(ColorMode::Rgba).shuffle(false).load().unwrap();
    assert_eq!(a.x.dims(), &[6, 2, 2, 4]);
    assert_eq!(pixel(&a.x, 5), vec![1.0, 2.0, 3.0, 255.0]);

    let e = image_dataset_from_directory(&d).label_mode(LabelMode::Binary).load().unwrap_err().to_string();
    assert!(e.contains("exactly 2 classes"), "{e}");
    let b = image_dataset_from_directory(&d)
        .image_size(2, 2)
        .class_names(["dogs", "cats", "birds"])
        .shuffle(false)
        .load()
        .unwrap();
    assert_eq!(b.class_names, ["dogs", "cats", "birds"]);
    assert_eq!(b.y.to_vec::<i64>().unwrap(), vec![0, 0, 1, 1, 1, 2]);

    std::fs::remove_dir_all(d.join("birds")).unwrap();
    let b =
        image_dataset_from_directory(&d).image_size(2, 2).label_mode(LabelMode::Binary).shuffle(false).load().unwrap();
    assert_eq!(b.y.dims(), &[5, 1]);
    assert_eq!(b.y.to_vec::<f32>().unwrap(), vec![0.0, 0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn resizes_bilinearly_like_tensorflow() {
    let d = common::temp_dir("if-resize");
    // A horizontal ramp 0, 10, 20, 30 (4x1), grayscale PNG.
    let img = image::GrayImage::from_fn(4, 1, |x, _| image::Luma([(x * 10) as u8]));
    std::fs::create_dir_all(d.join("a")).unwrap();
    img.save(d.join("a/ramp.png")).unwrap();
    let ds = image_dataset_from_directory(&d)
        .image_size(1, 2)
        .color_mode(ColorMode::Grayscale)
        .shuffle(false)
        .load()
        .unwrap();
    assert_eq!(ds.x.to_vec::<f32>().unwrap(), vec![5.0, 25.0]);
    let one = read_image(d.join("a/ramp.png"), ColorMode::Rgb, None).unwrap();
    assert_eq!(one.dims(), &[1, 4, 3]);
    let up = resize_bilinear(&one, 1, 8).unwrap();
    let v: Vec<f32> = up.to_vec::<f32>().unwrap().chunks(3).map(|p| p[0]).collect();
    assert_eq!(v, vec![0.0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30.0]);
    let batch = Tensor::from_vec(vec![0u8, 10, 20, 30, 0, 10, 20, 30], (2, 1, 4, 1)).unwrap();
    assert_eq!(resize_bilinear(&batch, 1, 2).unwrap().to_vec::<f32>().unwrap(), vec![5.0, 25.0, 5.0, 25.0]);
    assert!(resize_bilinear(&batch, 0, 2).is_err());
    assert!(resize_bilinear(&Tensor::from_vec(vec![0f32; 4], 4).unwrap(), 2, 2).is_err());
}

#[test]
fn shuffles_with_seed_and_splits_disjointly() {
    let d = common::temp_dir("if-split");
    for i in 0..20u8 {
        let class = if i % 2 == 0 { "even" } else { "odd" };
        solid(&d.join(format!("{class}/{i:02}.png")), 2, 2, [i, i, i]);
    }
    let load = |seed: u64| image_dataset_from_directory(&d).image_size(2, 2).seed(seed).load().unwrap();
    let (a, b, c) = (load(1), load(1), load(2));
    assert_eq!(a.file_paths, b.file_paths);
    assert_eq!(a.x.to_vec::<f32>().unwrap(), b.x.to_vec::<f32>().unwrap());
    assert_ne!(a.file_paths, c.file_paths);
    let mut sorted = a.file_paths.clone();
    sorted.sort();
    assert_ne!(sorted, a.file_paths, "not shuffled");
    // Labels follow their images through the shuffle.
    for (i, p) in a.file_paths.iter().enumerate() {
        let want = if p.to_string_lossy().contains("/odd/") { 1 } else { 0 };
        assert_eq!(a.y.to_vec::<i64>().unwrap()[i], want);
        let v: u8 = p.file_stem().unwrap().to_string_lossy().parse().unwrap();
        assert_eq!(pixel(&a.x, i)[0], v as f32);
    }

    let split = |s: Subset| {
        image_dataset_from_directory(&d).image_size(2, 2).validation_split(0.25).subset(s).seed(7).load().unwrap()
    };
    let (tr, va) = (split(Subset::Training), split(Subset::Validation));
    assert_eq!((tr.x.dims()[0], va.x.dims()[0]), (15, 5));
    let mut all: Vec<_> = tr.file_paths.iter().chain(&va.file_paths).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 20, "subsets overlap");
    let (tr2, va2) =
        image_dataset_from_directory(&d).image_size(2, 2).validation_split(0.25).seed(7).load_both().unwrap();
    assert_eq!(tr2.file_paths, tr.file_paths);
    assert_eq!(va2.file_paths, va.file_paths);
    assert_eq!(va2.y.to_vec::<i64>().unwrap(), va.y.to_vec::<i64>().unwrap());
}

#[test]
fn errors_name_the_problem() {
    let msg = |r: keel_data::Result<keel_data::image::ImageDataset>| r.unwrap_err().to_string();
    let d = common::temp_dir("if-errors");
    assert!(msg(image_dataset_from_directory(d.join("missing")).load()).contains("missing"));
    let e = msg(image_dataset_from_directory(&d).load());
    assert!(e.contains("empty"), "{e}");
    solid(&d.join("loose.png"), 2, 2, [0, 0, 0]);
    let e = msg(image_dataset_from_directory(&d).load());
    assert!(e.contains("no class subfolders"), "{e}");
    std::fs::create_dir_all(d.join("cats")).unwrap();
    std::fs::write(d.join("cats/readme.txt"), "x").unwrap();
    let e = msg(image_dataset_from_directory(&d).load());
    assert!(e.contains("no images found"), "{e}");

    solid(&d.join("cats/ok.png"), 2, 2, [0, 0, 0]);
    let good = std::fs::read(d.join("cats/ok.png")).unwrap();
    std::fs::write(d.join("cats/truncated.png"), &good[..good.len() / 2]).unwrap();
    let e = msg(image_dataset_from_directory(&d).image_size(2, 2).load());
    assert!(e.contains("truncated.png") && e.contains("cannot decode"), "{e}");
    std::fs::write(d.join("cats/truncated.png"), b"garbage, not a png").unwrap();
    let e = msg(image_dataset_from_directory(&d).image_size(2, 2).load());
    assert!(e.contains("truncated.png"), "{e}");
    std::fs::remove_file(d.join("cats/truncated.png")).unwrap();
    std::fs::write(d.join("cats/old.BMP"), b"BM").unwrap();
    let e = msg(image_dataset_from_directory(&d).image_size(2, 2).load());
    assert!(e.contains("old.BMP") && e.contains("not supported"), "{e}");
    std::fs::remove_file(d.join("cats/old.BMP")).unwrap();
    assert!(image_dataset_from_directory(&d).image_size(2, 2).load().is_ok());

    let f = image_dataset_from_directory(&d).image_size(2, 2);
    assert!(msg(f.clone().validation_split(0.5).seed(1).load()).contains("subset"));
    assert!(msg(f.clone().subset(Subset::Training).load()).contains("validation_split"));
    assert!(msg(f.clone().validation_split(0.5).subset(Subset::Training).load()).contains("seed"));
    assert!(msg(f.clone().validation_split(1.5).subset(Subset::Training).seed(1).load()).contains("between 0 and 1"));
    // One image: a 0.5 split leaves the validation subset empty.
    assert!(msg(f.clone().validation_split(0.5).subset(Subset::Validation).seed(1).load()).contains("empty"));
    assert!(f.clone().load_both().is_err());
    assert!(msg(f.clone().class_names(["dogs"]).load()).contains("do not match"));
    assert!(msg(f.clone().image_size(0, 2).load()).contains("positive"));
    assert!(read_image(d.join("nope.png"), ColorMode::Rgb, None).is_err());
}

#[test]
fn png_writing_round_trips() {
    let d = common::temp_dir("if-png");
    let px: Vec<u8> = (0..2 * 3 * 3).map(|i| (i * 14) as u8).collect();
    let t = Tensor::from_vec(px.clone(), (2, 3, 3)).unwrap();
    write_png(d.join("rgb.png"), &t).unwrap();
    let back = read_image(d.join("rgb.png"), ColorMode::Rgb, None).unwrap();
    assert_eq!(back.dims(), &[2, 3, 3]);
    assert_eq!(back.to_vec::<f32>().unwrap(), px.iter().map(|&v| v as f32).collect::<Vec<_>>());
    // Floats are rounded and clamped; [H, W] is grayscale.
    let f = Tensor::from_vec(vec![-5.0f32, 0.4, 127.6, 300.0, f32::NAN, 255.0], (2, 3)).unwrap();
    write_png(d.join("gray.png"), &f).unwrap();
    let g = read_image(d.join("gray.png"), ColorMode::Grayscale, None).unwrap();
    assert_eq!(g.to_vec::<f32>().unwrap(), vec![0.0, 0.0, 128.0, 255.0, 0.0, 255.0]);
    let rgba = Tensor::from_vec(vec![1u8, 2, 3, 4], (1, 1, 4)).unwrap();
    let bytes = encode_png(&rgba).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(encode_png(&Tensor::from_vec(vec![0u8; 4], (1, 2, 2)).unwrap()).is_err());
    assert!(encode_png(&Tensor::from_vec(vec![0u8; 4], 4).unwrap()).is_err());
    assert!(write_png(d.join("no/dir/x.png"), &rgba).is_err());
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn grids_tile_row_major() {
    let imgs =
        Tensor::from_vec((0..5).flat_map(|i| vec![i as f32 * 10.0; 4]).collect::<Vec<_>>(), (5, 2, 2, 1)).unwrap();
    let g = image_grid(&imgs, 3, 1, -1.0).unwrap();
    // 2 rows x 3 cols of 2x2 tiles with 1-pixel padding: 7 x 10.
    assert_eq!(g.dims(), &[7, 10, 1]);
    let v = g.to_vec::<f32>().unwrap();
    let at = |y: usize, x: usize| v[y * 10 + x];
    assert_eq!(at(0, 0), -1.0);
    assert_eq!((at(1, 1), at(2, 2)), (0.0, 0.0));
    assert_eq!(at(1, 4), 10.0);
    assert_eq!(at(1, 7), 20.0);
    assert_eq!(at(4, 1), 30.0);
    assert_eq!(at(5, 5), 40.0);
    assert_eq!(at(4, 7), -1.0); // empty cell
    assert_eq!(at(3, 1), -1.0); // separator row
    assert!(image_grid(&imgs, 0, 1, 0.0).is_err());
    assert!(image_grid(&Tensor::from_vec(vec![0f32; 4], (2, 2, 1)).unwrap(), 1, 1, 0.0).is_err());

    let d = common::temp_dir("if-grid");
    save_png_grid(d.join("grid.png"), &imgs, 5).unwrap();
    let back = read_image(d.join("grid.png"), ColorMode::Grayscale, None).unwrap();
    assert_eq!(back.dims(), &[2 + 4, 5 * 4 + 2, 1]);
    assert_eq!(back.to_vec::<f32>().unwrap()[0], 128.0);
}
