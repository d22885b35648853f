//! What build is running: crate version and git commit (from `build.rs`).

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_SHA: &str = env!("BUILD_GIT_SHA");
/// `teamsgw --version` prints this after the binary name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("BUILD_GIT_SHA"),
    ")"
);
