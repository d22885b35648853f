//! Issue 32 §4 against real peers: an Operator Connect enterprise's calls on the carrier trunk
//! (`teams.base_fqdn`, here `sbc.test`) next to a Direct Routing enterprise in the same daemon.
//! Kamailio is both customers' hosted PBX; baresip phones sit behind it; baresip over TLS with
//! SRTP is each Teams user; the in-house Teams client plays an unassigned OC number.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use teamsgw_tests::call_lab::{CallLab, TEAMS_NUMBER, TENANT};
use teamsgw_tests::free_port;
use teamsgw_tests::teams_uac::{TeamsUac, header};

/// `teams.base_fqdn` in the lab: the carrier trunk.
const CARRIER: &str = "sbc.test";
/// Fabrikam's Teams user: its activated UserAssigned OC number, and its PBX extension.
const OC_NUMBER: &str = "+14255550100";
const OC_EXTENSION: &str = "1003";

/// Fabrikam, an Operator Connect enterprise on the lab's PBX, with carol holding
/// [`OC_NUMBER`] (registered at Kamailio as [`OC_EXTENSION`]) and an unassigned number.
fn provision_operator_connect(lab: &CallLab) {
    lab.cli(&[
        "enterprise",
        "add",
        "Fabrikam",
        "--tenant-id",
        "7f3e2a10-aaaa-4bbb-8ccc-000000000032",
        "--acquired-licenses",
        "10",
        "--service",
        "operator-connect",
    ]);
    let proxy = lab.kamailio.addr.to_string();
    lab.cli(&[
        "pbx",
        "add",
        "--enterprise",
        "Fabrikam",
        "--name",
        "main",
        "--domain",
        "127.0.0.1",
        "--proxy",
        &proxy,
        "--transport",
        "udp",
        "--expires",
        "600",
    ]);
    std::fs::write(lab.daemon.dir().join("pw-oc"), format!("pw-{OC_EXTENSION}")).unwrap();
    lab.cli(&[
        "user",
        "add",
        "--enterprise",
        "Fabrikam",
        "--pbx",
        "main",
        "--upn",
        "carol@fabrikam.test",
        "--number",
        "+14255550001",
        "--extension",
        OC_EXTENSION,
        "--password-file",
        "pw-oc",
        "--sku",
        "SPE_E5",
    ]);
    for args in [
        &["--number", OC_NUMBER, "--user", "carol@fabrikam.test"][..],
        &["--number", "+14255550101"][..],
    ] {
        let mut full = vec!["oc-number", "add", "--enterprise", "Fabrikam"];
        full.extend_from_slice(args);
        lab.cli(&full);
    }
    lab.daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab
        .kamailio
        .bindings()
        .contains(&format!("AoR: {OC_EXTENSION}\n"))
    {
        assert!(
            Instant::now() < deadline,
            "the OC user never registered at the PBX:\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Both directions for a user of an OC enterprise, with audio both ways, while a Direct
/// Routing user calls at the same time; an unassigned OC number is refused (403); each CDR
/// names its service.
#[test]
fn operator_connect_calls_both_ways_beside_direct_routing() {
    let teams_sip = free_port();
    let mut lab = CallLab::start("", &["127.0.0.3"], teams_sip + 1, None);
    lab.sip_trace = true;
    provision_operator_connect(&lab);
    // The OC Teams user listens where the lab's Teams proxy is (calls towards Teams reach
    // it); the Direct Routing user only calls out, from elsewhere.
    let oc_teams =
        lab.teams_endpoint_as(([127, 0, 0, 3], teams_sip).into(), 1200, OC_NUMBER, CARRIER);
    let dr_teams = lab.teams_endpoint_as(
        ([127, 0, 0, 4], free_port()).into(),
        900,
        TEAMS_NUMBER,
        TENANT,
    );
    let phone = lab.phone("2001", 700);
    let other = lab.phone("2002", 500);

    // From Teams on the carrier trunk, and a Direct Routing call up at the same time.
    oc_teams.dial(&format!("sip:+49302222001@{CARRIER};transport=tls"));
    dr_teams.dial(&format!("sip:+49302222002@{TENANT};transport=tls"));
    for end in [&oc_teams, &phone, &dr_teams, &other] {
        end.wait_log("Call established", Duration::from_secs(20));
    }
    lab.assert_active("from_teams", 2);
    dr_teams.hangup();
    other.wait_log("session closed", Duration::from_secs(10));
    lab.heard_both((&oc_teams, 1200), (&phone, 700), 1);

    // From the PBX to the OC user: to Teams from the carrier trunk.
    phone.dial(&format!("sip:{OC_EXTENSION}@127.0.0.1"));
    lab.heard_both((&phone, 700), (&oc_teams, 1200), 2);
    let sbc = std::net::SocketAddr::from(([127, 0, 0, 1], lab.ports.tls));
    let invite = oc_teams
        .received_from_host(sbc)
        .into_iter()
        .find(|m| m.starts_with("INVITE "))
        .unwrap_or_else(|| panic!("no INVITE reached the OC Teams user\n{}", lab.logs()));
    assert!(
        invite.contains(&format!("To: <sip:{OC_NUMBER}@{CARRIER};user=phone>")),
        "{invite}"
    );
    assert!(
        invite.contains(&format!("@{CARRIER}:{};transport=tls>", lab.ports.tls)),
        "Contact on the carrier trunk: {invite}"
    );

    // An unassigned OC number is screened like an unknown caller.
    let mut uac: TeamsUac = lab.teams_uac();
    uac.send(&TeamsUac::invite(
        "oc-unassigned",
        "+14255550101",
        "+49302222001",
        CARRIER,
        teamsgw_tests::teams_uac::OFFER,
    ));
    let refused = uac.expect(403);
    let warning = header(&refused, "Warning").unwrap_or_default();
    assert!(
        warning.contains("not an assigned Operator Connect number"),
        "{refused}"
    );

    // The three answered calls' records name their service and trunk.
    let cdrs = lab.cdrs(3);
    let service = |direct_route: &str| -> Vec<String> {
        cdrs.iter()
            .filter(|c| c["direct_route"] == direct_route && c["result"] == "answered")
            .map(|c| c["service"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        service(CARRIER),
        ["operator-connect", "operator-connect"],
        "{cdrs:?}"
    );
    assert_eq!(service(TENANT), ["direct-routing"], "{cdrs:?}");
}
