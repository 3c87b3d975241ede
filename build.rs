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
    println!("cargo::rerun-if-changed=Cargo.lock");
    // The probe's answer holds for one linker: ask again when the linker set for the target
    // changes (Cargo does not re-run a build script for that on its own).
    let Ok(target) = env::var("TARGET") else {
        return;
    };
    let triple = target.to_uppercase().replace('-', "_");
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_{triple}_LINKER");
    // Only ELF on Linux: elsewhere the option means nothing, or a linker only warns about it.
    if env::var("PROFILE").as_deref() != Ok("release")
        || env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
    {
        return;
    }
    let Some(manifest_dir) = env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let manifest_dir = PathBuf::from(manifest_dir);
    let order = manifest_dir.join(ORDER);
    if !order.is_file() {
        return;
    }
    let stale = made_for_another(&order, &manifest_dir);
    if !stale.is_empty() {
        println!(
            "cargo::warning={ORDER} was not made for this build's {}: most of its names are \
             not this build's, so the binary links nearly in the default order (idle RSS \
             ~3.7 MiB higher); run scripts/symbol-order",
            stale.join(", ")
        );
    }
    let args = [
        format!("-Wl,--symbol-ordering-file={}", order.display()),
        // Names the list has and this build does not (another toolchain, changed code) are
        // expected; the list is a layout hint, not a contract.
        "-Wl,--no-warn-symbol-ordering".to_owned(),
    ];
    match links_with(&target, &args) {
        Ok(()) => {
            for arg in &args {
                println!("cargo::rustc-link-arg-bin=reload-butler={arg}");
            }
        }
        Err(why) => println!(
            "cargo::warning=the binary is linked in the default order: a test link with \
             --symbol-ordering-file failed ({why}); LLD takes it, GNU ld does not"
        ),
    }
}

/// The lines of the list's header (`# cargo-lock-fnv1a64: …`, `# rustc: …`, written by
/// scripts/symbol-order) that this build's Cargo.lock or rustc do not match.
fn made_for_another(order: &Path, manifest_dir: &Path) -> Vec<String> {
    let list = std::fs::read_to_string(order).unwrap_or_default();
    let header: Vec<&str> = list.lines().take_while(|l| l.starts_with('#')).collect();
    let lock = std::fs::read(manifest_dir.join("Cargo.lock"))
        .ok()
        .map(|lock| format!("# cargo-lock-fnv1a64: {:016x}", fnv1a64(&lock)));
    let rustc = env::var_os("RUSTC")
        .and_then(|rustc| Command::new(rustc).arg("-V").output().ok())
        .map(|out| format!("# rustc: {}", String::from_utf8_lossy(&out.stdout).trim()));
    [lock, rustc]
        .into_iter()
        .flatten()
        .filter(|line| !header.contains(&line.as_str()))
        .map(|line| line.trim_start_matches("# ").to_owned())
        .collect()
}

/// FNV-1a, 64 bits: what scripts/symbol-order records of Cargo.lock.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether a one-line program links with `args` under the same rustc, target, flags and linker
/// as this build, and if not, why (the first line of rustc's error).
fn links_with(target: &str, args: &[String]) -> Result<(), String> {
    let (Some(rustc), Some(out_dir)) = (env::var_os("RUSTC"), env::var_os("OUT_DIR")) else {
        return Err("RUSTC or OUT_DIR is not set".to_owned());
    };
    let probe_dir = Path::new(&out_dir);
    let source = probe_dir.join("probe.rs");
    std::fs::write(&source, "fn main() {}\n").map_err(|e| format!("{}: {e}", source.display()))?;
    let mut command = Command::new(rustc);
    command
        .arg("--target")
        .arg(target)
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
    let output = command
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(stderr
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_owned())
}
