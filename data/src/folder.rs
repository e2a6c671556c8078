//! The one-folder-per-class layout that `image::image_dataset_from_directory` (feature
//! `image`) and [`text_dataset_from_directory`](crate::text_dataset_from_directory) read
//! (Keras's `index_directory`): class folders, labels, the seeded shuffle and the
//! validation split.

use crate::{Error, Result};
use keel_tensor::Tensor;
use std::path::{Path, PathBuf};

/// How labels are encoded (Keras `label_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelMode {
    /// I64 `[N]` class indices (for sparse categorical cross-entropy); Keras's default.
    #[default]
    Int,
    /// F32 one-hot `[N, num_classes]` (for categorical cross-entropy).
    Categorical,
    /// F32 `[N, 1]` of 0/1 (binary cross-entropy); needs exactly two classes.
    Binary,
}

/// Which part of a `validation_split` to load (Keras `subset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subset {
    /// The first `N - floor(split * N)` files (after shuffling).
    Training,
    /// The last `floor(split * N)` files (after shuffling).
    Validation,
}

/// The files a loader reads: a plural noun for messages (`"images"`), the extensions it
/// loads (lower case, compared case-insensitively) and those Keras loads but keel cannot
/// (an error naming the file, rather than a silent skip).
pub(crate) struct FileKind {
    pub what: &'static str,
    pub extensions: &'static [&'static str],
    pub unsupported: &'static [&'static str],
}

/// The options every class-folder loader shares, with Keras's defaults.
#[derive(Debug, Clone)]
pub(crate) struct FolderOptions {
    pub dir: PathBuf,
    pub label_mode: LabelMode,
    pub class_names: Option<Vec<String>>,
    pub shuffle: bool,
    pub seed: Option<u64>,
    pub validation_split: Option<f64>,
    pub subset: Option<Subset>,
    pub follow_links: bool,
}

/// The builders of [`FolderOptions`] on a loader type with an `opts` field.
macro_rules! folder_builders {
    ($t:ty, $what:literal) => {
        impl $t {
            #[doc = concat!("Int (I64 `[N]`, default), categorical (one-hot F32) or binary (F32 `[N, 1]`) labels of the ", $what, ".")]
            pub fn label_mode(mut self, mode: $crate::folder::LabelMode) -> Self {
                self.opts.label_mode = mode;
                self
            }

            /// Load only these classes, in this order (label `i` is `names[i]`); each must be a
            /// subfolder, and subfolders not named are skipped (as Keras's `class_names`).
            pub fn class_names(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
                self.opts.class_names = Some(names.into_iter().map(Into::into).collect());
                self
            }

            #[doc = concat!("Shuffle the ", $what, " (default `true`); with no [`seed`](Self::seed), a random seed is used.")]
            pub fn shuffle(mut self, on: bool) -> Self {
                self.opts.shuffle = on;
                self
            }

            /// Seed of the shuffle; required with `validation_split` so both subsets agree.
            pub fn seed(mut self, seed: u64) -> Self {
                self.opts.seed = Some(seed);
                self
            }

            #[doc = concat!("Hold out this fraction (0 < f < 1) of the ", $what, "; pick the part with [`subset`](Self::subset).")]
            pub fn validation_split(mut self, fraction: f64) -> Self {
                self.opts.validation_split = Some(fraction);
                self
            }

            /// Which part of the `validation_split` [`load`](Self::load) returns.
            pub fn subset(mut self, subset: $crate::folder::Subset) -> Self {
                self.opts.subset = Some(subset);
                self
            }

            /// Follow symbolic links to subdirectories while searching (default `false`, as Keras).
            pub fn follow_links(mut self, on: bool) -> Self {
                self.opts.follow_links = on;
                self
            }
        }
    };
}
pub(crate) use folder_builders;

impl FolderOptions {
    /// Keras's defaults for `dir`: int labels, every class folder, shuffled, no split.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        FolderOptions {
            dir: dir.as_ref().to_path_buf(),
            label_mode: LabelMode::Int,
            class_names: None,
            shuffle: true,
            seed: None,
            validation_split: None,
            subset: None,
            follow_links: false,
        }
    }

    /// The files and labels `load` returns: every file, or the chosen subset of a split;
    /// `(paths, labels, class names)`.
    pub fn load_index(&self, op: &'static str, kind: &FileKind) -> Result<(Vec<PathBuf>, Vec<usize>, Vec<String>)> {
        match (self.validation_split, self.subset) {
            (Some(_), None) => {
                return Err(Error::invalid(
                    op,
                    "validation_split is set but subset is not; call .subset(Subset::Training) or \
                     .subset(Subset::Validation), or .load_both()",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::invalid(op, "subset is set but validation_split is not; set .validation_split(f)"))
            }
            _ => {}
        }
        let (paths, labels, class_names) = self.index(op, kind)?;
        let (paths, labels) = match (self.validation_split, self.subset) {
            (Some(f), Some(s)) => split(paths, labels, f, s, op, kind)?,
            _ => (paths, labels),
        };
        Ok((paths, labels, class_names))
    }

    /// Both parts of a `validation_split`, `(training, validation)`, each as
    /// `(paths, labels)`, and the class names (Keras `subset="both"`).
    #[allow(clippy::type_complexity)]
    pub fn load_both_index(
        &self,
        op: &'static str,
        kind: &FileKind,
    ) -> Result<((Vec<PathBuf>, Vec<usize>), (Vec<PathBuf>, Vec<usize>), Vec<String>)> {
        let f = self
            .validation_split
            .ok_or_else(|| Error::invalid(op, "load_both needs .validation_split(f) with 0 < f < 1"))?;
        let (paths, labels, class_names) = self.index(op, kind)?;
        let train = split(paths.clone(), labels.clone(), f, Subset::Training, op, kind)?;
        let val = split(paths, labels, f, Subset::Validation, op, kind)?;
        Ok((train, val, class_names))
    }

    /// Find the class folders and the files; shuffle if asked.
    fn index(&self, op: &'static str, kind: &FileKind) -> Result<(Vec<PathBuf>, Vec<usize>, Vec<String>)> {
        if let Some(f) = self.validation_split {
            if !(f > 0.0 && f < 1.0) {
                return Err(Error::invalid(
                    op,
                    format!("validation_split must be between 0 and 1 (exclusive), got {f}"),
                ));
            }
            if self.shuffle && self.seed.is_none() {
                return Err(Error::invalid(
                    op,
                    "with validation_split and shuffling, set .seed(s) so the training and validation \
                     subsets do not overlap",
                ));
            }
        }
        let dir = &self.dir;
        let what = kind.what;
        let mut entries = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let e = e.map_err(|e| Error::io(dir, e))?;
            entries.push(e.path());
        }
        if entries.is_empty() {
            return Err(Error::format(
                dir.display().to_string(),
                format!("the directory is empty; put one subfolder of {what} per class in it"),
            ));
        }
        // Keras's index_directory: hidden folders (.git, .ipynb_checkpoints) are not classes
        let mut subdirs: Vec<String> = entries
            .iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| !n.starts_with('.'))
            .collect();
        subdirs.sort();
        if subdirs.is_empty() {
            let ext = kind.extensions[0];
            return Err(Error::format(
                dir.display().to_string(),
                format!(
                    "no class subfolders: put each class's {what} in its own subfolder \
                     (dir/cats/*.{ext}, dir/dogs/*.{ext}); files directly in the directory are ignored"
                ),
            ));
        }
        let class_names = match &self.class_names {
            None => subdirs,
            // Keras: the names must be subfolders (a subset is fine); only those load, in the given order
            Some(names) => {
                if let Some(bad) = names.iter().find(|n| !subdirs.contains(n)) {
                    return Err(Error::invalid(
                        op,
                        format!(
                            "class_names {names:?} do not match the subfolders of {}: '{bad}' is not one of \
                             {subdirs:?}; pass those names or a subset of them",
                            dir.display()
                        ),
                    ));
                }
                if let Some((i, dup)) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
                    return Err(Error::invalid(
                        op,
                        format!("class_names {names:?} name '{dup}' twice (again at index {i}); list each class once"),
                    ));
                }
                if names.is_empty() {
                    return Err(Error::invalid(
                        op,
                        format!("class_names is empty; pass some of the subfolders {subdirs:?}, or leave it unset"),
                    ));
                }
                names.clone()
            }
        };
        let mut paths = Vec::new();
        let mut labels = Vec::new();
        for (label, class) in class_names.iter().enumerate() {
            let mut found = Vec::new();
            walk(&dir.join(class), self.follow_links, kind, &mut found)?;
            // Keras: directories in path order, files sorted within each.
            found.sort();
            labels.extend(std::iter::repeat_n(label, found.len()));
            paths.extend(found.into_iter().map(|(_, p)| p));
        }
        if paths.is_empty() {
            return Err(Error::format(
                dir.display().to_string(),
                format!(
                    "no {what} found in the {} class folders {class_names:?} (looked for {} files)",
                    class_names.len(),
                    kind.extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if self.label_mode == LabelMode::Binary && class_names.len() != 2 {
            return Err(Error::invalid(
                op,
                format!(
                    "label_mode Binary needs exactly 2 classes, found {}: {class_names:?}; use Int or Categorical",
                    class_names.len()
                ),
            ));
        }
        if self.shuffle {
            let seed = self.seed.unwrap_or_else(random_seed);
            let order = crate::loader::epoch_order(paths.len(), true, seed, 0);
            paths = order.iter().map(|&i| paths[i].clone()).collect();
            labels = order.iter().map(|&i| labels[i]).collect();
        }
        Ok((paths, labels, class_names))
    }

    /// The label tensor of `labels` (class indices) under the label mode, for `k` classes.
    pub fn label_tensor(&self, labels: &[usize], k: usize) -> Result<Tensor> {
        let n = labels.len();
        Ok(match self.label_mode {
            LabelMode::Int => Tensor::from_vec(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), n)?,
            LabelMode::Categorical => {
                let mut v = vec![0f32; n * k];
                for (i, &l) in labels.iter().enumerate() {
                    v[i * k + l] = 1.0;
                }
                Tensor::from_vec(v, (n, k))?
            }
            LabelMode::Binary => Tensor::from_vec(labels.iter().map(|&l| l as f32).collect::<Vec<_>>(), (n, 1))?,
        })
    }
}

/// Keras's `get_training_or_validation_split`: the last `floor(f * n)` samples validate.
fn split(
    paths: Vec<PathBuf>,
    labels: Vec<usize>,
    f: f64,
    subset: Subset,
    op: &'static str,
    kind: &FileKind,
) -> Result<(Vec<PathBuf>, Vec<usize>)> {
    let n = paths.len();
    let n_val = (f * n as f64).floor() as usize;
    let range = match subset {
        Subset::Training => 0..n - n_val,
        Subset::Validation => n - n_val..n,
    };
    if range.is_empty() {
        return Err(Error::invalid(
            op,
            format!(
                "validation_split {f} of {n} {} leaves the {subset:?} subset empty; add {} or change the split",
                kind.what, kind.what
            ),
        ));
    }
    Ok((paths[range.clone()].to_vec(), labels[range].to_vec()))
}

/// Collect `(parent dir, path)` of the files of `kind` under `dir`, recursively.
fn walk(dir: &Path, follow_links: bool, kind: &FileKind, out: &mut Vec<(PathBuf, PathBuf)>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let path = e.path();
        let ft = e.file_type().map_err(|e| Error::io(&path, e))?;
        let is_dir = ft.is_dir() || (ft.is_symlink() && path.is_dir());
        if is_dir {
            if ft.is_dir() || follow_links {
                walk(&path, follow_links, kind, out)?;
            }
            continue;
        }
        let ext = path.extension().map(|x| x.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if kind.extensions.contains(&ext.as_str()) {
            out.push((dir.to_path_buf(), path));
        } else if kind.unsupported.contains(&ext.as_str()) {
            let ok = kind.extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", ");
            return Err(Error::format(
                path.display().to_string(),
                format!(".{ext} {} are not supported (only {ok}); convert the file or move it out", kind.what),
            ));
        }
    }
    Ok(())
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
    h.finish()
}
