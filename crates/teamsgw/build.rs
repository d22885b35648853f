//! Records the git commit the binary is built from, for `teamsgw_build_info` and `--version`.
//! `GIT_SHA` set at build time wins (packaging from a tarball has no .git). Neither name may
//! start with `TEAMSGW_`: `cargo run` exports build-script variables to the daemon, whose
//! config treats every `TEAMSGW_*` variable as a key override.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    let sha = std::env::var("GIT_SHA").ok().or_else(|| {
        let git_dir = git(&["rev-parse", "--git-dir"])?;
        // New commits move HEAD or a ref; rebuild this crate (only) when they do.
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/refs/heads");
        println!("cargo:rerun-if-changed={git_dir}/packed-refs");
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    println!(
        "cargo:rustc-env=BUILD_GIT_SHA={}",
        sha.unwrap_or_else(|| "unknown".to_owned())
    );
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}
