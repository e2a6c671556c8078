//! Numeric CSV files with a header row, split into feature and label tensors.
//!
//! ```no_run
//! use keel_data::csv::{read_csv, CsvOptions, Missing};
//! # fn main() -> keel_data::Result<()> {
//! let t = read_csv("houses.csv", &CsvOptions::new().label("price").missing(Missing::Fill(0.0)))?;
//! println!("{:?} features {:?}, labels {:?}", t.feature_names, t.x.dims(), t.y.dims());
//! # Ok(()) }
//! ```
//!
//! Fields may be quoted (`"a, b"`, with `""` for a quote inside); a quoted
//! field cannot span lines. Blank lines are skipped. A cell is *missing* when
//! it is empty or one of `NA`, `N/A`, `NaN`, `null`, `?` (case-insensitive);
//! [`Missing`] says what to do with it. Cells are parsed as `f32`: a number
//! too large for it (e.g. `1e50`) is an error, while `inf` / `-inf` are kept.

use crate::{Error, Result};
use keel_tensor::Tensor;
use std::path::Path;

/// What to do with a missing cell.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Missing {
    /// Fail with an error naming the line and column (the default).
    #[default]
    Error,
    /// Replace missing *feature* cells by this value (a missing label is still an error).
    Fill(f32),
    /// Drop every row with a missing cell (feature or label).
    DropRow,
}

/// Options for [`read_csv`] / [`parse_csv`]; build with the methods.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    labels: Option<Vec<String>>,
    ignore: Vec<String>,
    missing: Missing,
    delimiter: char,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions::new()
    }
}

impl CsvOptions {
    /// Defaults: the last column is the label, missing cells are errors, comma-separated.
    pub fn new() -> Self {
        CsvOptions { labels: None, ignore: Vec::new(), missing: Missing::Error, delimiter: ',' }
    }

    /// Use the column named `name` as the (single) label.
    pub fn label(mut self, name: &str) -> Self {
        self.labels = Some(vec![name.to_string()]);
        self
    }

    /// Use these columns, in this order, as labels (`y` becomes `[N, labels.len()]`; empty = no labels).
    pub fn labels(mut self, names: &[&str]) -> Self {
        self.labels = Some(names.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Skip the column named `name` (e.g. an id or a text column).
    pub fn ignore(mut self, name: &str) -> Self {
        self.ignore.push(name.to_string());
        self
    }

    /// What to do with missing cells.
    pub fn missing(mut self, policy: Missing) -> Self {
        self.missing = policy;
        self
    }

    /// The field separator (default `,`; e.g. `;` or `\t`).
    pub fn delimiter(mut self, d: char) -> Self {
        self.delimiter = d;
        self
    }
}

/// A CSV file split into features and labels.
#[derive(Debug, Clone)]
pub struct CsvTable {
    /// Features, F32 `[rows, features]`.
    pub x: Tensor,
    /// Labels, F32 `[rows]` for one label column, else `[rows, labels]`.
    pub y: Tensor,
    /// Names of the feature columns, in order.
    pub feature_names: Vec<String>,
    /// Names of the label columns, in order.
    pub label_names: Vec<String>,
}

/// Read and parse the CSV file at `path`.
pub fn read_csv(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<CsvTable> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let name = path.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::format(&name, format!("not valid UTF-8 (byte {}); save the file as UTF-8", e.utf8_error().valid_up_to()))
    })?;
    parse_csv(&text, &name, opts)
}

/// Split one line into fields; `Err(msg)` on an unclosed quote.
fn split_fields(line: &str, delim: char) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.trim().is_empty() {
            cur.clear();
            in_quotes = true;
        } else if c == delim {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if in_quotes {
        return Err("a quoted field is not closed on this line (quoted fields cannot span lines); \
                    add the closing quote"
            .into());
    }
    out.push(cur);
    Ok(out)
}

fn is_missing(cell: &str) -> bool {
    let c = cell.trim();
    c.is_empty() || ["na", "n/a", "nan", "null", "?"].iter().any(|m| c.eq_ignore_ascii_case(m))
}

/// Parse CSV `text`; `name` labels errors (use the file name, or `"<string>"`).
pub fn parse_csv(text: &str, name: &str, opts: &CsvOptions) -> Result<CsvTable> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty());
    let err =
        |line: usize, column: Option<String>, msg: String| Error::Csv { file: name.to_string(), line, column, msg };
    let (hline, header) =
        lines.next().ok_or_else(|| Error::format(name, "the file is empty; expected a header row of column names"))?;
    let header: Vec<String> = split_fields(header, opts.delimiter)
        .map_err(|m| err(hline, None, m))?
        .into_iter()
        .map(|s| s.trim().to_string())
        .collect();
    let ncol = header.len();
    let find = |n: &str| -> Result<usize> {
        header.iter().position(|h| h == n).ok_or_else(|| {
            err(hline, None, format!("no column named '{n}' in the header (columns: {})", header.join(", ")))
        })
    };
    let label_idx: Vec<usize> = match &opts.labels {
        Some(names) => names.iter().map(|n| find(n)).collect::<Result<_>>()?,
        None => vec![ncol - 1],
    };
    let ignore_idx: Vec<usize> = opts.ignore.iter().map(|n| find(n)).collect::<Result<_>>()?;
    if let Some(&j) = label_idx.iter().find(|j| ignore_idx.contains(j)) {
        let what = if opts.labels.is_some() { "a label" } else { "the label (the last column, by default)" };
        return Err(err(
            hline,
            None,
            format!(
                "column '{}' is both {what} and ignored; drop it from CsvOptions::ignore or choose \
                 other labels",
                header[j]
            ),
        ));
    }
    let feat_idx: Vec<usize> = (0..ncol).filter(|i| !label_idx.contains(i) && !ignore_idx.contains(i)).collect();
    let col_name = |j: usize| format!("{} '{}'", j + 1, header[j]);

    let (mut xs, mut ys) = (Vec::<f32>::new(), Vec::<f32>::new());
    let mut rows = 0usize;
    let mut row = vec![0f32; ncol];
    'lines: for (ln, line) in lines {
        let fields = split_fields(line, opts.delimiter).map_err(|m| err(ln, None, m))?;
        if fields.len() != ncol {
            return Err(err(
                ln,
                None,
                format!(
                    "this row has {} fields but the header has {ncol}; fix the row (a missing \
                     or extra '{}'?)",
                    fields.len(),
                    opts.delimiter
                ),
            ));
        }
        for (j, cell) in fields.iter().enumerate() {
            if ignore_idx.contains(&j) {
                continue;
            }
            if is_missing(cell) {
                let is_label = label_idx.contains(&j);
                match opts.missing {
                    Missing::DropRow => continue 'lines,
                    Missing::Fill(v) if !is_label => {
                        row[j] = v;
                        continue;
                    }
                    _ => {
                        let what = if is_label {
                            "missing label; drop such rows with Missing::DropRow"
                        } else {
                            "missing value; choose Missing::Fill(v) or Missing::DropRow, or fill the cell"
                        };
                        return Err(err(ln, Some(col_name(j)), what.into()));
                    }
                }
            }
            let text = cell.trim();
            let v = text.parse::<f32>().map_err(|_| {
                err(
                    ln,
                    Some(col_name(j)),
                    format!(
                        "cannot parse '{text}' as a number; fix the cell, or skip the column with \
                         CsvOptions::ignore(\"{}\")",
                        header[j]
                    ),
                )
            })?;
            // `parse` rounds a number beyond f32's range to infinity; only a written `inf` may be one
            let inf_literal = |t: &str| {
                let t = t.trim_start_matches(['+', '-']);
                t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity")
            };
            if v.is_infinite() && !inf_literal(text) {
                return Err(err(
                    ln,
                    Some(col_name(j)),
                    format!(
                        "'{text}' is too large for a 32-bit float (at most about 3.4e38 in magnitude); \
                         rescale the column"
                    ),
                ));
            }
            row[j] = v;
        }
        xs.extend(feat_idx.iter().map(|&j| row[j]));
        ys.extend(label_idx.iter().map(|&j| row[j]));
        rows += 1;
    }
    let x = Tensor::from_vec(xs, (rows, feat_idx.len()))?;
    let y =
        if label_idx.len() == 1 { Tensor::from_vec(ys, rows)? } else { Tensor::from_vec(ys, (rows, label_idx.len()))? };
    Ok(CsvTable {
        x,
        y,
        feature_names: feat_idx.iter().map(|&j| header[j].clone()).collect(),
        label_names: label_idx.iter().map(|&j| header[j].clone()).collect(),
    })
}
