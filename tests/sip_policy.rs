//! The daemon's SIP listeners against a real peer (sipp): the stateless policy's answers over
//! UDP and TCP, and its counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use teamsgw_tests::{Daemon, Ports, sipp, test_config};

fn started() -> (Daemon, Ports) {
    let ports = Ports::new();
    let mut daemon = Daemon::start(&test_config(&ports, ""), &ports);
    daemon.wait_ready(Duration::from_secs(20));
    (daemon, ports)
}

#[test]
fn sipp_uac_invite_gets_404_over_udp_and_tcp() {
    let (daemon, ports) = started();
    for transport in ["u1", "t1"] {
        let (code, out) = sipp("uac_invite_404.xml", ports.sip_addr(), transport, 50, &[]);
        assert_eq!(
            code,
            0,
            "sipp -t {transport} failed:\n{out}\n{}",
            daemon.log()
        );
    }
    for transport in ["udp", "tcp"] {
        let sent = daemon.metric(&format!(
            "teamsgw_sip_messages_sent_total{{kind=\"4xx\",transport=\"{transport}\"}}"
        ));
        assert!(sent >= 50.0, "{transport}: {sent} 404s counted");
    }
}

#[test]
fn sipp_options_gets_200_with_allow_over_udp_and_tcp() {
    let (daemon, ports) = started();
    for transport in ["u1", "t1"] {
        let (code, out) = sipp("options_200.xml", ports.sip_addr(), transport, 50, &[]);
        assert_eq!(
            code,
            0,
            "sipp -t {transport} failed:\n{out}\n{}",
            daemon.log()
        );
    }
    for transport in ["udp", "tcp"] {
        let received = daemon.metric(&format!(
            "teamsgw_sip_messages_received_total{{kind=\"OPTIONS\",transport=\"{transport}\"}}"
        ));
        let answered = daemon.metric(&format!(
            "teamsgw_sip_messages_sent_total{{kind=\"2xx\",transport=\"{transport}\"}}"
        ));
        assert!(
            received >= 50.0 && answered >= 50.0,
            "{transport}: {received} OPTIONS counted in, {answered} 2xx out"
        );
    }
}
