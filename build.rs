//! Links the release binary with its functions in the order the daemon first runs them
//! (`link/symbol-order.txt`, made by `scripts/symbol-order`): start-up and idle code first, then
//! the alert path. The code a running daemon needs then sits in a few megabytes instead of being
//! spread through the binary, and the kernel maps fewer of its pages (docs/performance.md,
//! seventh round). Any other linker, profile or a stale list still builds; it only loses that.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const ORDER: &str = "link/symbol-order.txt";

fn main() {
    println!("cargo::rerun-if-changed={ORDER}");
    if env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    let Some(manifest_dir) = env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = PathBuf::from(manifest_dir).join(ORDER);
    if !order.is_file() {
        return;
    }
    let args = [
        format!("-Wl,--symbol-ordering-file={}", order.display()),
        // Names the list has and this build does not (another toolchain, changed code) are
        // expected; the list is a layout hint, not a contract.
        "-Wl,--no-warn-symbol-ordering".to_owned(),
    ];
    if links_with(&args) {
        for arg in &args {
            println!("cargo::rustc-link-arg-bin=reload-butler={arg}");
        }
    } else {
        println!(
            "cargo::warning=the linker does not take --symbol-ordering-file (not LLD); \
             the binary is linked in the default order"
        );
    }
}

/// Whether a one-line program links with `args` under the same rustc, target, flags and linker
/// as this build: GNU ld, the default before Rust 1.90, rejects the option.
fn links_with(args: &[String]) -> bool {
    let (Some(rustc), Some(out_dir), Ok(target)) = (
        env::var_os("RUSTC"),
        env::var_os("OUT_DIR"),
        env::var("TARGET"),
    ) else {
        return false;
    };
    let probe_dir = Path::new(&out_dir);
    let source = probe_dir.join("probe.rs");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut command = Command::new(rustc);
    command
        .arg("--target")
        .arg(&target)
        .arg("-o")
        .arg(probe_dir.join("probe"))
        .arg(&source);
    if let Ok(flags) = env::var("CARGO_ENCODED_RUSTFLAGS") {
        command.args(flags.split('\x1f').filter(|flag| !flag.is_empty()));
    }
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        let mut flag = OsString::from("linker=");
        flag.push(linker);
        command.arg("-C").arg(flag);
    }
    for arg in args {
        command.arg("-C").arg(format!("link-arg={arg}"));
    }
    command.output().is_ok_and(|output| output.status.success())
}
