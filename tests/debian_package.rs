//! The Debian package (deploy/README.md "Debian package"), built with cargo-deb from the
//! debug build the suite already has, inspected with `dpkg-deb`, installed with `dpkg -i` on
//! this machine, removed (the data stays) and purged (it goes). Installing needs root: the
//! test fails, saying so, when it is not root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} not found ({e}); it comes with Debian's dpkg"))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?}:\n{}", text(&out));
    text(&out)
}

fn installed() -> bool {
    text(&run("dpkg-query", &["-W", "-f=${Status}", "teamsgw"])).contains("install ok installed")
}

/// Purges what the test installed, whatever happened.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "teamsgw"]);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_package_installs_runs_keeps_data_on_remove_and_purges_it() {
    let uid = ok("id", &["-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "this test installs a package with dpkg and needs root"
    );
    assert!(
        !installed(),
        "a teamsgw package is already installed here; this test would purge it"
    );
    let out = tempfile::tempdir().unwrap();
    let script = root().join("scripts/package.sh");
    ok(
        script.to_str().unwrap(),
        &[
            "--profile",
            "dev",
            "--no-build",
            "--output",
            out.path().to_str().unwrap(),
        ],
    );
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("cargo-deb wrote no .deb");
    let deb = deb.to_str().unwrap();

    // What the package holds.
    let files = ok("dpkg-deb", &["-c", deb]);
    for path in [
        "./usr/bin/teamsgw",
        "./etc/teamsgw/teamsgw.toml",
        "./lib/systemd/system/teamsgw.service",
    ] {
        assert!(files.contains(path), "{path} missing:\n{files}");
    }
    let info = ok("dpkg-deb", &["-I", deb]);
    for needed in [
        "Package: teamsgw",
        "Depends: ",
        "postinst",
        "postrm",
        "conffiles",
    ] {
        assert!(info.contains(needed), "{needed} missing:\n{info}");
    }
    let control = tempfile::tempdir().unwrap();
    ok("dpkg-deb", &["-e", deb, control.path().to_str().unwrap()]);
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/teamsgw/teamsgw.toml");
    let depends = ok("dpkg-deb", &["-f", deb, "Depends"]);
    assert!(
        depends.contains("libc6") && depends.contains("passwd"),
        "{depends}"
    );
    // The packaged config has the paths of a packaged install.
    let tree = tempfile::tempdir().unwrap();
    ok("dpkg-deb", &["-x", deb, tree.path().to_str().unwrap()]);
    let toml = std::fs::read_to_string(tree.path().join("etc/teamsgw/teamsgw.toml")).unwrap();
    for line in [
        "state_dir = \"/var/lib/teamsgw\"",
        "url = \"sqlite:///var/lib/teamsgw/teamsgw.db\"",
        "password_key = \"file:/etc/teamsgw/password.key\"",
    ] {
        assert!(
            toml.lines().any(|l| l == line),
            "{line} missing from the packaged config"
        );
    }

    // Installed: the binary runs, the config checks, the account and state directory exist.
    let _purge = Purge;
    ok("dpkg", &["-i", deb]);
    assert!(installed());
    let version = ok("/usr/bin/teamsgw", &["--version"]);
    assert!(version.starts_with("teamsgw "), "{version}");
    ok(
        "/usr/bin/teamsgw",
        &["check-config", "--config", "/etc/teamsgw/teamsgw.toml"],
    );
    let account = ok("getent", &["passwd", "teamsgw"]);
    assert!(
        account.contains(":/var/lib/teamsgw:/usr/sbin/nologin"),
        "{account}"
    );
    let state = ok("stat", &["-c", "%U:%G %a", "/var/lib/teamsgw"]);
    assert_eq!(state.trim(), "teamsgw:teamsgw 750");
    let conf = ok("stat", &["-c", "%U:%G %a", "/etc/teamsgw/teamsgw.toml"]);
    assert_eq!(conf.trim(), "root:teamsgw 640", "the config holds secrets");
    // Issue 31 §9: the password key lives with the config, apart from the data, readable by
    // the service only, and it is a key the daemon takes (64 hex characters).
    let key = ok("stat", &["-c", "%U:%G %a", "/etc/teamsgw/password.key"]);
    assert_eq!(key.trim(), "root:teamsgw 640");
    let text = std::fs::read_to_string("/etc/teamsgw/password.key").unwrap();
    assert!(
        text.trim().len() == 64 && text.trim().bytes().all(|b| b.is_ascii_hexdigit()),
        "{text:?}"
    );
    assert!(!Path::new("/var/lib/teamsgw/password.key").exists());

    // `apt remove` keeps the data and the config; `apt purge` removes them and the account.
    std::fs::write("/var/lib/teamsgw/teamsgw.db", b"data").unwrap();
    ok("dpkg", &["--remove", "teamsgw"]);
    assert!(!Path::new("/usr/bin/teamsgw").exists());
    assert!(
        Path::new("/var/lib/teamsgw/teamsgw.db").exists(),
        "remove lost the data"
    );
    assert!(
        Path::new("/etc/teamsgw/teamsgw.toml").exists(),
        "remove lost the config"
    );
    assert!(run("getent", &["passwd", "teamsgw"]).status.success());
    ok("dpkg", &["--purge", "teamsgw"]);
    assert!(
        !Path::new("/var/lib/teamsgw").exists(),
        "purge kept the data"
    );
    assert!(!Path::new("/etc/teamsgw").exists(), "purge kept the config");
    assert!(
        !run("getent", &["passwd", "teamsgw"]).status.success(),
        "purge kept the account"
    );
}
