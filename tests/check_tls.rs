//! `teamsgw check-tls`, the pre-flight report (teams-direct-routing.md §1.2, §1.3), on real
//! files: Debian's CA bundle (ca-certificates), a bundle with 2 of Microsoft's 7 roots, our
//! certificate from a test CA, and `--connect` against the in-house Teams proxy presenting a
//! Microsoft-shaped (serverAuth only, intermediate) certificate. What Debian ships is read with
//! openssl, not with teamsgw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use teamsgw_sip::test_pki::{LeafFiles, TestCa};
use teamsgw_tests::teams_proxy::TeamsProxy;
use teamsgw_tests::{free_port, require_program, run_cli};

const DEBIAN_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const ROOTS: [&str; 7] = [
    "DigiCert Global Root CA",
    "DigiCert Global Root G2",
    "DigiCert Global Root G3",
    "DigiCert TLS ECC P384 Root G5",
    "DigiCert TLS RSA4096 Root G5",
    "Microsoft ECC Root Certificate Authority 2017",
    "Microsoft RSA Root Certificate Authority 2017",
];

/// Debian's file for a root, as ca-certificates names it.
fn debian_file(root: &str) -> PathBuf {
    Path::new("/etc/ssl/certs").join(format!("{}.pem", root.replace(' ', "_")))
}

/// The SHA-256 fingerprint openssl gives a PEM certificate, upper-case hex without colons.
fn openssl_sha256(pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl x509 {}", pem.display());
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split_once('=')
        .unwrap()
        .1
        .replace(':', "")
}

/// A config for check-tls in `dir`: our certificate `ours`, trust anchors `anchors`, base FQDN
/// sbc.test, and Teams proxies `proxies` on `proxy_port`.
fn config(dir: &Path, ours: &LeafFiles, anchors: &Path, proxies: &str, proxy_port: u16) {
    std::fs::write(
        dir.join("teamsgw.toml"),
        format!(
            "[tls]\ncertificate = \"{}\"\nkey = \"{}\"\ntrust_anchors = \"{}\"\n\n\
             [teams]\nbase_fqdn = \"sbc.test\"\nproxies = [{proxies}]\nproxy_port = {proxy_port}\n",
            ours.cert.display(),
            ours.key.display(),
            anchors.display()
        ),
    )
    .unwrap();
}

fn check_tls(dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["--config", "teamsgw.toml", "check-tls"];
    args.extend_from_slice(extra);
    let (code, out, err) = run_cli(dir, &args);
    (code, format!("{out}{err}"))
}

fn setup() -> (tempfile::TempDir, TestCa, LeafFiles) {
    require_program("openssl", "openssl");
    assert!(
        Path::new(DEBIAN_BUNDLE).is_file(),
        "{DEBIAN_BUNDLE} missing: install Debian's ca-certificates"
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "carrier");
    let ours = ca.leaf("sbc", &["sbc.test", "*.sbc.test"]);
    (dir, ca, ours)
}

#[test]
fn two_of_the_seven_roots_names_the_five_missing_and_exits_1() {
    let (dir, ca, ours) = setup();
    let held = [
        "DigiCert Global Root G2",
        "Microsoft RSA Root Certificate Authority 2017",
    ];
    let mut bundle = std::fs::read_to_string(ca.ca_path()).unwrap();
    for root in held {
        bundle += &std::fs::read_to_string(debian_file(root)).unwrap();
    }
    let anchors = dir.path().join("two-roots.pem");
    std::fs::write(&anchors, bundle).unwrap();
    config(dir.path(), &ours, &anchors, "", 5061);
    let (code, out) = check_tls(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    for root in ROOTS {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{root}: ")))
            .unwrap_or_else(|| panic!("{root} not reported:\n{out}"));
        if held.contains(&root) {
            assert!(
                line.starts_with("  ok") && line.contains(": present"),
                "{line}"
            );
        } else {
            assert!(
                line.starts_with("  PROBLEM") && line.contains(": missing"),
                "{line}"
            );
        }
    }
    assert!(out.contains("5 problem(s) block calls with Teams"), "{out}");
    // Our certificate itself is fine: chain, names, both EKUs.
    assert!(out.contains("ok       names: *.sbc.test covered"), "{out}");
    assert!(
        out.contains("ok       key usage: clientAuth present"),
        "{out}"
    );
}

#[test]
fn debian_bundle_is_reported_truthfully_and_a_complete_setup_exits_0() {
    let (dir, ca, ours) = setup();
    let anchors = dir.path().join("debian-and-ours.pem");
    std::fs::write(
        &anchors,
        std::fs::read_to_string(ca.ca_path()).unwrap()
            + &std::fs::read_to_string(DEBIAN_BUNDLE).unwrap(),
    )
    .unwrap();
    config(dir.path(), &ours, &anchors, "", 5061);
    let (code, out) = check_tls(dir.path(), &[]);
    let mut shipped = 0;
    for root in ROOTS {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{root}: ")))
            .unwrap_or_else(|| panic!("{root} not reported:\n{out}"));
        let file = debian_file(root);
        if file.is_file() {
            shipped += 1;
            let fingerprint = openssl_sha256(&file);
            assert!(
                line.contains(": present") && line.contains(&fingerprint),
                "Debian ships {root} ({fingerprint}), check-tls says: {line}"
            );
        } else {
            assert!(line.contains(": missing"), "{line}");
        }
    }
    assert_eq!(code, i32::from(shipped < ROOTS.len()), "{out}");
    if shipped == ROOTS.len() {
        assert!(
            out.contains("no problem that blocks calls with Teams"),
            "{out}"
        );
    }
}

#[test]
fn a_server_auth_only_certificate_of_ours_is_a_blocking_problem() {
    let (dir, ca, _) = setup();
    // What a 2026 renewal from a public CA may hand out: serverAuth only.
    let renewed = ca.microsoft_leaf("renewed", &["sbc.test", "*.sbc.test"]);
    config(dir.path(), &renewed, &ca.ca_path(), "", 5061);
    let (code, out) = check_tls(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("PROBLEM  key usage: clientAuth missing"),
        "{out}"
    );
    assert!(out.contains("ok       chain: 2 certificate(s)"), "{out}");
}

#[test]
fn connect_handshakes_with_each_teams_proxy_and_prints_its_chain() {
    let (dir, ca, ours) = setup();
    let proxy_leaf = ca.microsoft_leaf("proxy", &["localhost"]);
    let port = free_port();
    let _proxy = TeamsProxy::start(([127, 0, 0, 1], port).into(), &ca, &proxy_leaf);
    config(dir.path(), &ours, &ca.ca_path(), "\"localhost\"", port);
    let (code, out) = check_tls(dir.path(), &["--connect"]);
    // The 7 Microsoft roots are missing from a test CA's bundle: that alone is the exit 1.
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("7 problem(s)"), "{out}");
    assert!(
        out.contains(&format!("ok       localhost:{port}: handshake verified")),
        "{out}"
    );
    assert!(
        out.contains("peer certificate 0: names [\"localhost\"]"),
        "{out}"
    );
    assert!(
        out.contains("peer certificate 1: names []"),
        "the intermediate: {out}"
    );

    // A proxy nobody answers is a blocking problem.
    let gone = free_port();
    config(dir.path(), &ours, &ca.ca_path(), "\"localhost\"", gone);
    let (code, out) = check_tls(dir.path(), &["--connect"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("PROBLEM  localhost:{gone}: ")) && out.contains("8 problem(s)"),
        "{out}"
    );
}
