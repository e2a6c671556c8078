//! Keras-style `model.summary()` tables (the tf.keras 2 layout).
//!
//! Rows are laid out exactly like tf.keras's `print_summary`: column stops at
//! 45%/85%/100% of 65 characters for Sequential models (30%/60%/70%/100% of 98
//! with a `Connected to` column for functional ones), a cell that does not fit
//! continues on the next line, one blank line after each layer, and the totals
//! with thousands separators. With `expand_nested` a nested model's layers follow its row,
//! framed by `|` and `¯` as tf.keras's `print_summary(expand_nested=True)` draws them.

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// `"conv2d (Conv2D)"`.
    pub layer: String,
    /// `"(None, 26, 26, 32)"`.
    pub output_shape: String,
    /// Number of scalars in the layer's weights.
    pub params: usize,
    /// `Connected to` cell (functional models only).
    pub connected_to: Option<String>,
    /// The rows of a nested model's layers, printed under this one when the summary expands
    /// nested models (empty otherwise).
    pub nested: Vec<SummaryRow>,
}

/// `225034` -> `"225,034"`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// tf.keras's `print_row`: lay `fields` out at column stops `positions`, wrapping long cells,
/// framed by `level` bars on each side for a nested model's layer.
fn print_row(fields: &[String], positions: &[usize], level: usize, out: &mut Vec<String>) {
    let mut left: Vec<Vec<char>> = fields.iter().map(|f| f.chars().collect()).collect();
    while left.iter().any(|f| !f.is_empty()) {
        let mut line: Vec<char> = Vec::new();
        for col in 0..left.len() {
            let start = if col > 0 { positions[col - 1] } else { 0 };
            let end = positions[col];
            let space = if col != positions.len() - 1 { 2 } else { 0 };
            let mut cutoff = end.saturating_sub(start + space);
            let fit: String = left[col].iter().take(cutoff).collect();
            let breaks = ["),", "},", "],", "',"];
            if let Some(c) = breaks.iter().filter_map(|b| fit.find(b).map(|i| i + b.len())).min() {
                cutoff = c;
            }
            if col == 0 {
                line.extend(std::iter::repeat_n('|', level));
                line.push(' ');
            }
            let take = cutoff.min(left[col].len());
            line.extend(left[col].drain(..take));
            line.extend(std::iter::repeat_n(' ', space));
            // the last column leaves room for the closing bars
            let stop = if col == positions.len() - 1 { positions[col].saturating_sub(level) } else { positions[col] };
            if stop > line.len() {
                let pad = stop - line.len();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line.extend(std::iter::repeat_n('|', level));
        out.push(line.into_iter().collect());
    }
}

/// `rows` at nesting `level` (tf.keras's `print_layer`): each row, its nested model's rows
/// between a `¯` line that opens and one that closes them, and a blank framed line after
/// every row but the last of a nested model.
fn print_rows(
    rows: &[SummaryRow],
    functional: bool,
    (positions, width): (&[usize], usize),
    level: usize,
    out: &mut Vec<String>,
) {
    let framed = |bars: usize, fill: char| {
        let mut line = "|".repeat(bars);
        line.extend(std::iter::repeat_n(fill, width.saturating_sub(2 * bars)));
        line.push_str(&"|".repeat(bars));
        line
    };
    for (i, r) in rows.iter().enumerate() {
        let mut fields = vec![r.layer.clone(), r.output_shape.clone(), r.params.to_string()];
        if functional {
            fields.push(r.connected_to.clone().unwrap_or_else(|| "[]".into()));
        }
        print_row(&fields, positions, level, out);
        if !r.nested.is_empty() {
            out.push(framed(level + 1, '\u{af}'));
            print_rows(&r.nested, functional, (positions, width), level + 1, out);
            out.push(framed(level, '\u{af}'));
        }
        if level == 0 || i + 1 < rows.len() {
            out.push(framed(level, ' '));
        }
    }
}

/// The whole summary text of model `name` (lines joined with `\n`, trailing newline).
pub fn format_summary(name: &str, rows: &[SummaryRow], trainable: usize, non_trainable: usize) -> String {
    let functional = rows.iter().any(|r| r.connected_to.is_some());
    let (width, stops, header): (usize, &[f64], Vec<&str>) = if functional {
        (98, &[0.3, 0.6, 0.70, 1.0], vec!["Layer (type)", "Output Shape", "Param #", "Connected to"])
    } else {
        (65, &[0.45, 0.85, 1.0], vec!["Layer (type)", "Output Shape", "Param #"])
    };
    let positions: Vec<usize> = stops.iter().map(|p| (width as f64 * p) as usize).collect();
    let mut out = vec![format!("Model: \"{name}\""), "_".repeat(width)];
    print_row(&header.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &positions, 0, &mut out);
    out.push("=".repeat(width));
    print_rows(rows, functional, (&positions, width), 0, &mut out);
    out.push("=".repeat(width));
    out.push(format!("Total params: {}", thousands(trainable + non_trainable)));
    out.push(format!("Trainable params: {}", thousands(trainable)));
    out.push(format!("Non-trainable params: {}", thousands(non_trainable)));
    out.push("_".repeat(width));
    let mut s = out.join("\n");
    s.push('\n');
    s
}
