//! REGISTER with digest authentication against a real Kamailio registrar (RFC 3261 §10,
//! §22; RFC 7616): MD5 and SHA-256, UDP and TCP; a wrong password is challenged again and
//! reported as an authentication failure, not retried forever.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use teamsgw_sip::transport::Transport;
use teamsgw_tests::free_tcp_udp_port;
use teamsgw_tests::kamailio::Kamailio;
use teamsgw_tests::ua::Ua;

/// Registers and returns the challenges the UA answered.
async fn register_and_check(kamailio: &Kamailio, transport: Transport, user: &str) -> Vec<String> {
    let ua = Ua::start(free_tcp_udp_port(), transport, Some(kamailio.addr)).await;
    let status = ua
        .register(user, &format!("pw-{user}"), "pbx.example.com", 600)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", kamailio.log()));
    assert_eq!(status, 200);
    let bindings = kamailio.bindings();
    assert!(bindings.contains(&format!("AoR: {user}")), "{bindings}");
    assert!(
        bindings.contains(&format!("sip:ua@{}", ua.addr)),
        "{bindings}"
    );
    let challenges = ua.stats.challenges.lock().unwrap().clone();
    assert_eq!(
        challenges.len(),
        1,
        "one challenge, answered once: {challenges:?}"
    );
    challenges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_md5_digest_over_udp_and_tcp() {
    let kamailio = Kamailio::start(&[]);
    for (transport, user) in [(Transport::Udp, "2001"), (Transport::Tcp, "2002")] {
        let challenges = register_and_check(&kamailio, transport, user).await;
        assert!(!challenges[0].contains("SHA-256"), "{challenges:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_sha256_digest() {
    let kamailio = Kamailio::start(&["ALGORITHM_SHA256"]);
    let challenges = register_and_check(&kamailio, Transport::Udp, "3001").await;
    assert!(
        challenges[0].contains("algorithm=SHA-256"),
        "{challenges:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_authentication_failure() {
    let kamailio = Kamailio::start(&[]);
    let ua = Ua::start(free_tcp_udp_port(), Transport::Udp, Some(kamailio.addr)).await;
    let err = ua
        .register("2001", "wrong", "pbx.example.com", 600)
        .await
        .unwrap_err();
    assert_eq!(err, "authentication failed for realm pbx.example.com");
    // Answered once, challenged again without stale=true: given up after one retry.
    assert_eq!(ua.stats.challenges.lock().unwrap().len(), 2);
    assert!(!kamailio.bindings().contains("AoR: 2001"));
}
