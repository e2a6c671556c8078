//! Runnable keel examples and end-to-end benchmarks; see the `examples/` folder
//! of this crate. This library holds the small helpers they share.

use keel::tensor::Device;

/// Command-line flags of the form `--name value` (and bare `--flag`).
pub struct Args {
    args: Vec<String>,
}

impl Args {
    /// The process's arguments (without the program name).
    pub fn from_env() -> Args {
        Args { args: std::env::args().skip(1).collect() }
    }

    /// The value after `--name`, parsed, or `default`; exits with a message on a bad value.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.args.iter().position(|a| a == &format!("--{name}")) {
            None => default,
            Some(i) => match self.args.get(i + 1).map(|v| v.parse::<T>()) {
                Some(Ok(v)) => v,
                _ => {
                    eprintln!("error: --{name} needs a valid value");
                    std::process::exit(2);
                }
            },
        }
    }

    /// The string after `--name`, if given.
    pub fn get_str(&self, name: &str) -> Option<String> {
        let i = self.args.iter().position(|a| a == &format!("--{name}"))?;
        self.args.get(i + 1).cloned()
    }

    /// True when the bare flag `--name` is present.
    pub fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == &format!("--{name}"))
    }

    /// The device named by `--device` (`cpu`, `cuda` or `cuda:N`; default `cpu`), checked to be
    /// usable: an error (never a panic) for an unknown name, a build without the `cuda`
    /// feature, or a machine without a usable GPU.
    pub fn device(&self) -> keel::Result<Device> {
        let name = self.get_str("device").unwrap_or_else(|| "cpu".into());
        let bad = |msg: String| keel::Error::from(keel::tensor::Error::InvalidArgument { op: "--device", msg });
        let ordinal = match name.as_str() {
            "cpu" => return Ok(Device::Cpu),
            "cuda" | "gpu" => 0,
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => n,
                _ => return Err(bad(format!("unknown device `{other}` (expected cpu, cuda or cuda:N)"))),
            },
        };
        if !cfg!(feature = "cuda") {
            return Err(bad("built without the cuda feature; rebuild with --features cuda".into()));
        }
        Ok(Device::cuda(ordinal)?)
    }
}

/// Runs an example's body (`fn main() { keel_examples::run_main(run) }`): when it fails,
/// prints the error and exits with status 1, so scripts see the failure.
pub fn run_main<E: std::fmt::Display>(run: impl FnOnce() -> Result<(), E>) {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
