//! [`History::plot`]: learning curves (train vs validation) as a PNG.
//!
//! Drawn with plotters' bitmap backend; text is rendered with ab_glyph from
//! a font shipped in this crate (DejaVu Sans, ASCII subset, see
//! `assets/DejaVuSans-LICENSE.txt`), so no system font is needed. The PNG
//! is encoded here (zlib via flate2) and written atomically.

use crate::atomic::write_atomic;
use crate::{Error, History, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans, printable ASCII only (about 14 KB).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-ASCII.ttf");
const FONT_NAME: &str = "keel-sans";
/// The size of one panel (one per metric).
const PANEL: (u32, u32) = (800, 320);

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| plotters::style::register_font(FONT_NAME, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Plot("the embedded font could not be loaded".into()))
    }
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Plot(e.to_string())
}

impl History {
    /// The metric names to plot: every log without its `val_` prefix, `loss` first.
    pub fn plot_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for k in self.keys() {
            let base = k.strip_prefix("val_").unwrap_or(k).to_string();
            if !names.contains(&base) {
                names.push(base);
            }
        }
        names.sort_by_key(|n| (n != "loss", n.clone()));
        names
    }

    /// Draw one panel per metric (loss first), train and validation curves
    /// against the epoch (1-based), and write it as a PNG to `path` (atomically).
    pub fn plot(&self, path: impl AsRef<Path>) -> Result<()> {
        let png = self.plot_png()?;
        write_atomic(path.as_ref(), &png)
    }

    /// The PNG bytes [`History::plot`] writes.
    pub fn plot_png(&self) -> Result<Vec<u8>> {
        let names = self.plot_names();
        if names.is_empty() || self.epoch.is_empty() {
            return Err(Error::Plot("the history is empty: nothing to plot".into()));
        }
        register_font()?;
        let (w, h) = (PANEL.0, PANEL.1 * names.len() as u32);
        let mut buf = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let panels = root.split_evenly((names.len(), 1));
            for (area, name) in panels.iter().zip(&names) {
                self.draw_panel(area, name)?;
            }
            root.present().map_err(plot_err)?;
        }
        Ok(encode_png(w, h, &buf))
    }

    fn draw_panel(&self, area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>, name: &str) -> Result<()> {
        let series: Vec<(String, Vec<(f64, f64)>, RGBColor)> =
            [(name.to_string(), RGBColor(31, 119, 180)), (format!("val_{name}"), RGBColor(255, 127, 14))]
                .into_iter()
                .filter_map(|(key, color)| {
                    self.get(&key)?;
                    // each value at its own epoch (validation may skip epochs: validation_freq)
                    let pts: Vec<(f64, f64)> = self
                        .points(&key)
                        .into_iter()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(e, v)| ((e + 1) as f64, v))
                        .collect();
                    Some((if key.starts_with("val_") { "validation".into() } else { "train".into() }, pts, color))
                })
                .collect();
        let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
        let (mut x0, mut x1) = ((self.epoch[0] + 1) as f64, (self.epoch[self.epoch.len() - 1] + 1) as f64);
        if x1 <= x0 {
            (x0, x1) = (x0 - 1.0, x1 + 1.0);
        }
        let (mut y0, mut y1) =
            all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        if !((y1 - y0) * 1.2).is_finite() || !(y0.abs().max(y1.abs()) * 1.2).is_finite() {
            // the chart's own arithmetic would overflow (and its tick search never end)
            return Err(plot_err(format!("cannot chart \"{name}\": its values span {y0:e}..{y1:e}")));
        }
        let pad = if y1 > y0 { (y1 - y0) * 0.05 } else { y0.abs().max(1.0) * 0.1 };
        (y0, y1) = (y0 - pad, y1 + pad);
        let mut chart = ChartBuilder::on(area)
            .caption(name, (FONT_NAME, 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT_NAME, 14))
            .axis_desc_style((FONT_NAME, 15))
            .draw()
            .map_err(plot_err)?;
        for (label, pts, color) in series {
            let style = ShapeStyle::from(&color).stroke_width(2);
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            if pts.len() <= 60 {
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(plot_err)?;
            }
        }
        chart
            .configure_series_labels()
            .label_font((FONT_NAME, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            // rising curves (accuracy, AUC) end top right: keep the legend out of their way
            .position(if crate::callbacks::Mode::Auto.maximizes(name) {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }
}

/// A PNG (8-bit RGB, no interlace) of `rgb` (`w * h * 3` bytes, row-major).
pub(crate) fn encode_png(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    use flate2::write::ZlibEncoder;
    use std::io::Write;
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut raw = Vec::with_capacity(rgb.len() + h as usize);
    for row in rgb.chunks(w as usize * 3) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // ok: writing to a Vec cannot fail
    let _ = z.write_all(&raw);
    let idat = z.finish().unwrap_or_default();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}
