//! The parser corpus: messages that must be accepted and messages that must be rejected, each
//! named after the RFC 4475 section (or RFC 3261 rule) it exercises. The messages follow the
//! RFC's torture tests; line breaks are written as `\n` and sent as CRLF.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use teamsgw_sip::message::{
    Contact, Defect, HeaderName, Host, Message, Method, ParseError, Uri, unescape,
};

fn crlf(text: &str) -> Bytes {
    Bytes::from(text.replace('\n', "\r\n").into_bytes())
}

fn valid(text: &str) -> Message {
    let msg = Message::parse(crlf(text)).expect("must parse");
    if let Err(d) = msg.validate() {
        panic!("must be valid, got defect {d:?}");
    }
    msg
}

/// A readable request that must be answered with `status` (400/505) for `label`.
fn answered(text: &str, status: u16, label: &str) -> Message {
    let msg = Message::parse(crlf(text)).expect("must be readable");
    let defect = msg.validate().expect_err("must be rejected");
    assert_eq!(
        (defect.status(), defect.label()),
        (status, label),
        "{defect}"
    );
    assert!(msg.can_answer(), "essentials must be readable to answer");
    msg
}

// ---- 3.1.1 valid messages ---------------------------------------------------------------

const WSINV: &str = "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 150
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.3
s=-
c=IN IP4 192.0.2.4
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
";

#[test]
fn rfc4475_3_1_1_1_short_tortuous_invite_folding_lws_compact_forms() {
    let m = valid(WSINV);
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(m.to_tag(), Some(&b"1918181833n"[..]));
    assert_eq!(m.from_tag(), Some(&b"98asjd8"[..]));
    assert_eq!(
        m.from().unwrap().unwrap().display,
        Some(&br#"J Rosenberg \\\""#[..])
    );
    assert_eq!(m.max_forwards().unwrap().unwrap(), 68);
    let cseq = m.cseq().unwrap().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(
        vias.len(),
        3,
        "long and compact Via lines, one of them a comma list"
    );
    assert_eq!(vias[0].host, Host::Ipv4("192.0.2.2".parse().unwrap()));
    assert_eq!(
        (vias[1].transport, vias[1].branch()),
        ("TCP", Some(&b"z9hG4bK9ikj8"[..]))
    );
    assert_eq!(vias[2].branch(), Some(&b"z9hG4bK30239"[..]));
    assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
    assert_eq!(
        m.other_header("newfangledheader").next(),
        Some(&b"newfangled value\r\n continued newfangled value"[..])
    );
    assert_eq!(
        m.other_header("UnknownHeaderWithUnusualValue").next(),
        Some(&b";;,,;;,;"[..])
    );
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(c.params.get(b"q"), Some(Some(&b"0.33"[..])));
    assert_eq!(c.params.get(b"secondparam"), Some(None));
    assert_eq!(m.routes().count(), 1);
    assert_eq!(m.body().len(), 150);
    assert!(m.body().ends_with(b"a=rtpmap:31 LPC\r\n"));
}

#[test]
fn rfc4475_3_1_1_2_wide_range_of_valid_characters() {
    let text = "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
extensionHeader-!.%*+_`'~:\u{feff}\u{5927}\u{505c}\u{96fb}
Content-Length: 0

";
    let m = valid(text);
    assert_eq!(
        m.method().unwrap().as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(
        uri.as_sip().unwrap().password,
        Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
    );
    assert_eq!(m.from_tag(), Some(&b"_token~1'+`*%!-."[..]));
    assert_eq!(
        m.call_id(),
        Some(&b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"[..])
    );
    assert_eq!(m.other_header("extensionHeader-!.%*+_`'~").count(), 1);
}

#[test]
fn rfc4475_3_1_1_3_valid_percent_escaping_is_kept_not_decoded() {
    let m = valid(
        "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 0

",
    );
    assert_eq!(
        m.request_uri().unwrap().unwrap().user(),
        Some(&b"sips%3Auser%40example.com"[..])
    );
    assert_eq!(m.to().unwrap().unwrap().uri.user(), Some(&b"%75se%72"[..]));
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
}

#[test]
fn rfc4475_3_1_1_4_escaped_nulls_in_uris() {
    let m = valid(
        "REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

",
    );
    // §3.1.1.4: the escaped nulls stay escaped in the parsed URIs, and decode to NUL octets
    // only when asked to.
    let to = m.to().unwrap().unwrap();
    assert_eq!(to.uri.user(), Some(&b"null-%00-null"[..]));
    assert_eq!(&*unescape(to.uri.user().unwrap()), b"null-\0-null");
    let from = m.from().unwrap().unwrap();
    assert_eq!(from.uri.user(), Some(&b"null-%00-null"[..]));
    assert_eq!(m.from_tag(), Some(&b"839923423"[..]));
    let users: Vec<Vec<u8>> = m
        .contacts()
        .map(|c| match c.unwrap() {
            Contact::Addr(a) => unescape(a.uri.user().unwrap()).into_owned(),
            Contact::Star => panic!("no star contact here"),
        })
        .collect();
    assert_eq!(users, vec![vec![0u8], vec![0u8, 0u8]]);
    assert_eq!(m.content_length().unwrap().unwrap(), 0);
}

#[test]
fn rfc4475_3_1_1_5_escape_in_method_is_not_decoded() {
    let m = valid(
        "RE%47IST%45R sip:registrar.example.com SIP/2.0
To: \"%Z%45\" <sip:resource@example.com>
From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209jsidf
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

",
    );
    assert_eq!(m.method(), Some(Method::Extension("RE%47IST%45R")));
    assert_eq!(
        m.contacts().count(),
        2,
        "C%6Fntact is an unknown header, not Contact"
    );
}

#[test]
fn rfc4475_3_1_1_6_display_name_without_space_before_angle() {
    let m = valid(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

",
    );
    assert_eq!(m.from().unwrap().unwrap().display, Some(&b"caller"[..]));
}

#[test]
fn rfc4475_3_1_1_7_long_values_in_header_fields() {
    let via = "Via: SIP/2.0/TCP sip33.example.com\nv: SIP/2.0/TCP sip32.example.com\n".repeat(20);
    let text = format!(
        "INVITE sip:user@example.com SIP/2.0
To: \"I have a user name of {long} proportion\" <sip:user@example.com:6000;unknownparam1=very{long}longvalue;longparam{long}name=shortvalue>
F: sip:{long}@example.net;tag=12982982982982982982982982982982982982982982982982982982982982982
Call-ID: longreq.one{long}really{long}longcallid
CSeq: 3882340 INVITE
Max-Forwards: 70
{via}Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{long}
Content-Length: 0

",
        long = "extremely".repeat(60)
    );
    let m = valid(&text);
    assert_eq!(m.vias().count(), 41);
}

#[test]
fn rfc4475_3_1_1_8_extra_octets_after_content_length_are_ignored_on_datagrams() {
    let m = valid(
        "REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0


INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
",
    );
    assert_eq!(m.method(), Some(Method::Register));
    assert!(m.body().is_empty());
}

#[test]
fn rfc4475_3_1_1_9_semicolon_in_user_part() {
    let m = valid(
        "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

",
    );
    assert_eq!(
        m.request_uri().unwrap().unwrap().user(),
        Some(&b"user;par=u%40example.net"[..])
    );
    assert_eq!(m.accept().count(), 6);
}

#[test]
fn rfc4475_3_1_1_10_unknown_transports_in_via() {
    let m = valid(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

",
    );
    let t: Vec<&str> = m.vias().map(|v| v.unwrap().transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn rfc4475_3_1_1_11_multipart_body_passes_through_unchanged() {
    let body = "--boundary42\nContent-Type: message/sip\n\nINVITE sip:bob@biloxi.com SIP/2.0\nVia: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\n\n--boundary42\nContent-Type: application/pkcs7-signature; name=smime.p7s\n\n\u{1}\u{2}binary\u{0}\u{ff}\n--boundary42--\n";
    let body_crlf = body.replace('\n', "\r\n");
    let text = format!(
        "MESSAGE sip:kumiko@example.org SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5080>
Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuL
To: <sip:kumiko@example.org>
From: <sip:fluffy@example.com>;tag=2fb0dcc9
Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..
CSeq: 1 MESSAGE
Content-Transfer-Encoding: binary
Content-Type: multipart/mixed;boundary=boundary42
Content-Length: {}

{body}",
        body_crlf.len()
    );
    let m = valid(&text);
    assert_eq!(m.body(), body_crlf.as_bytes());
    assert_eq!(
        m.content_type().unwrap().unwrap().params.get(b"boundary"),
        Some(Some(&b"boundary42"[..]))
    );
}

#[test]
fn rfc4475_3_1_1_12_unusual_reason_phrase() {
    let m = valid("SIP/2.0 200 = 2**3 * 5**2 \u{43d}\u{43e} \u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{43d}\u{43e}\u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{442}\u{44c}
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 0
Contact: <sip:user@host198.example.com>

");
    assert_eq!(m.status(), Some(200));
}

#[test]
fn rfc4475_3_1_1_13_empty_reason_phrase() {
    let m = valid(
        "SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0

",
    );
    assert_eq!((m.status(), m.reason_phrase()), (Some(100), Some(&b""[..])));
}

#[test]
fn rfc3261_7_5_leading_crlf_and_bare_lf_line_ends_are_tolerated() {
    let raw = Bytes::from_static(b"\r\n\r\nOPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:b@example.com>;tag=1\nTo: <sip:a@example.com>\nCall-ID: x\nCSeq: 1 OPTIONS\n\n");
    let m = Message::parse(raw).unwrap();
    m.validate().unwrap();
    // Every header was read, none swallowed into its neighbour by the bare LF.
    assert_eq!(m.method(), Some(Method::Options));
    assert_eq!(m.request_uri_raw(), Some(&b"sip:a@example.com"[..]));
    assert_eq!(m.header_count(), 5);
    let via = m.top_via().unwrap().unwrap();
    assert_eq!(via.branch(), Some(&b"z9hG4bK1"[..]));
    assert_eq!(m.from_tag(), Some(&b"1"[..]));
    assert_eq!(m.to_tag(), None);
    assert_eq!(m.call_id(), Some(&b"x"[..]));
    let cseq = m.cseq().unwrap().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Options));
    assert_eq!(m.body(), b"");
}

#[test]
fn rfc3261_18_3_missing_content_length_on_a_datagram_means_body_to_the_end() {
    let m = valid(
        "MESSAGE sip:a@example.com SIP/2.0
Via: SIP/2.0/UDP h;branch=z9hG4bK1
From: <sip:b@example.com>;tag=1
To: <sip:a@example.com>
Call-ID: x
CSeq: 1 MESSAGE
Content-Type: text/plain

hello",
    );
    assert_eq!(m.body(), b"hello");
}

#[test]
fn rfc3261_19_1_ipv6_references_and_tel_uris() {
    let m = valid(
        "INVITE sip:+14155550100@[2001:db8::10]:5061;transport=tls SIP/2.0
Via: SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bKas3-111;rport
From: <tel:+14155550199;phone-context=example.com>;tag=5
To: <sip:+14155550100@[2001:db8::10]>
Call-ID: ipv6.1
CSeq: 1 INVITE
P-Asserted-Identity: <sip:+14155550199@example.com;user=phone>, <tel:+14155550199>
Privacy: id
History-Info: <sip:a@example.com?Reason=SIP%3Bcause%3D302>;index=1, <sip:b@example.com>;index=1.1
Session-Expires: 1800;refresher=uac
Supported: timer, 100rel
Content-Length: 0

",
    );
    let Uri::Sip(u) = m.request_uri().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(
        (u.host, u.port),
        (Host::Ipv6("2001:db8::10".parse().unwrap()), Some(5061))
    );
    assert_eq!(m.p_asserted_identities().count(), 2);
    assert_eq!(m.history_info().count(), 2);
    assert_eq!(m.privacy().collect::<Vec<_>>(), vec![&b"id"[..]]);
    assert_eq!(
        m.supported().map(Result::unwrap).collect::<Vec<_>>(),
        ["timer", "100rel"]
    );
    assert_eq!(m.session_expires().unwrap().unwrap().delta, 1800);
}

#[test]
fn rfc4475_3_3_2_unknown_scheme_in_to_is_still_a_valid_message() {
    let m = valid(
        "OPTIONS sip:user@example.com SIP/2.0
To: isbn:2983792873
From: <http://www.example.com>;tag=3234233
Call-ID: unksm2.daksdj@hyphenated-host.example.com
CSeq: 234234 OPTIONS
Max-Forwards: 70
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw
Contact: <name:John_Smith>
l: 0

",
    );
    assert!(matches!(
        m.to().unwrap().unwrap().uri,
        Uri::Other { scheme: "isbn", .. }
    ));
}

// ---- 3.1.2 invalid messages ---------------------------------------------------------------

const ESSENTIALS: &str = "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bK3
From: <sip:caller@example.net>;tag=134161461246
To: <sip:j.user@example.com>
Call-ID: invalid.1@example.net
";

#[test]
fn rfc4475_3_1_2_1_extraneous_header_separators() {
    answered(
        "INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: \"Joe\" <sip:joe@example.org>;;;;
Content-Length: 0

",
        400,
        "bad_header",
    );
}

#[test]
fn rfc4475_3_1_2_2_content_length_larger_than_the_datagram() {
    answered(
        &format!(
            "INVITE sip:user@example.com SIP/2.0\nMax-Forwards: 80\n{ESSENTIALS}CSeq: 1 INVITE\nContent-Length: 9999\n\nv=0\n"
        ),
        400,
        "content_length_too_large",
    );
}

#[test]
fn rfc4475_3_1_2_3_negative_content_length() {
    answered(
        &format!(
            "INVITE sip:user@example.com SIP/2.0\n{ESSENTIALS}CSeq: 1 INVITE\nContent-Length: -999\n\nv=0\n"
        ),
        400,
        "bad_header",
    );
}

#[test]
fn rfc3261_18_3_content_length_repeated_with_different_values() {
    answered(
        &format!(
            "INVITE sip:user@example.com SIP/2.0\n{ESSENTIALS}CSeq: 1 INVITE\nContent-Length: 4\nl: 3\n\nv=0\n"
        ),
        400,
        "conflicting_content_length",
    );
}

#[test]
fn rfc4475_3_1_2_4_request_scalar_fields_with_overlarge_values() {
    answered(
        &format!(
            "REGISTER sip:example.com SIP/2.0\n{ESSENTIALS}CSeq: 36893488147419103232 REGISTER\nMax-Forwards: 300\nl: 0\n\n"
        ),
        400,
        "bad_header",
    );
    answered(
        &format!(
            "REGISTER sip:example.com SIP/2.0\n{ESSENTIALS}CSeq: 1 REGISTER\nMax-Forwards: 300\nl: 0\n\n"
        ),
        400,
        "bad_header",
    );
}

#[test]
fn rfc4475_3_1_2_5_response_scalar_fields_with_overlarge_values_are_dropped() {
    let m = Message::parse(crlf(&format!(
        "SIP/2.0 503 Service Unavailable\n{ESSENTIALS}CSeq: 1 INVITE\nRetry-After: 949302838503028349304023988\nContent-Length: 0\n\n"
    )))
    .unwrap();
    // Retry-After saturates (RFC 3261 §20.33); the response itself is fine.
    assert_eq!(m.retry_after().unwrap().unwrap().seconds, u32::MAX);
    let m = Message::parse(crlf(&format!(
        "SIP/2.0 200 OK\n{ESSENTIALS}CSeq: 98765432109876543210 INVITE\nContent-Length: 0\n\n"
    )))
    .unwrap();
    assert!(m.validate().is_err());
    assert!(!m.can_answer(), "responses are never answered");
}

#[test]
fn rfc4475_3_1_2_6_unterminated_quoted_string_in_display_name() {
    answered(
        "INVITE sip:user@example.com SIP/2.0
To: \"Mr. J. User <sip:j.user@example.com>
From: sip:caller@example.net;tag=93334
Max-Forwards: 10
Call-ID: quotbal.aksdj
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Content-Length: 0

",
        400,
        "bad_header",
    );
}

#[test]
fn rfc4475_3_1_2_7_angle_brackets_around_request_uri() {
    answered(
        &format!("INVITE <sip:user@example.com> SIP/2.0\n{ESSENTIALS}CSeq: 1 INVITE\nl: 0\n\n"),
        400,
        "bad_request_uri",
    );
}

#[test]
fn rfc4475_3_1_2_8_whitespace_inside_request_uri() {
    answered(
        &format!("INVITE sip:user@example.com; lr SIP/2.0\n{ESSENTIALS}CSeq: 1 INVITE\nl: 0\n\n"),
        400,
        "bad_request_uri",
    );
}

#[test]
fn rfc4475_3_1_2_9_extra_whitespace_in_request_line() {
    answered(
        &format!("INVITE  sip:user@example.com  SIP/2.0\n{ESSENTIALS}CSeq: 1 INVITE\nl: 0\n\n"),
        400,
        "bad_request_uri",
    );
    answered(
        &format!(
            "OPTIONS sip:remote-target@example.com SIP/2.0  \n{ESSENTIALS}CSeq: 1 OPTIONS\nl: 0\n\n"
        ),
        400,
        "bad_request_line",
    );
}

#[test]
fn rfc4475_3_1_2_12_addr_spec_with_escaped_header_needs_name_addr() {
    answered(
        &format!(
            "REGISTER sip:example.com SIP/2.0\n{ESSENTIALS}CSeq: 1 REGISTER\nContact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\nl: 0\n\n"
        ),
        400,
        "bad_header",
    );
}

#[test]
fn rfc4475_3_1_2_13_whitespace_inside_angle_brackets() {
    answered(
        "OPTIONS sip:user@example.org SIP/2.0
Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234
Max-Forwards: 70
From: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423
To: \"Watson, Thomas\" < sip:t.watson@example.org >
Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3
Accept: application/sdp
CSeq: 3923239 OPTIONS
l: 0

",
        400,
        "bad_header",
    );
}

#[test]
fn rfc4475_3_1_2_14_unquoted_display_name_with_non_token_characters() {
    answered(
        "OPTIONS sip:t.watson@example.org SIP/2.0
Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards:      70
From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43
To:      Watson, Thomas <sip:t.watson@example.org>
Call-ID: baddn.31415@c.example.com
Accept: application/sdp
CSeq:    3923239 OPTIONS
l: 0

",
        400,
        "bad_header",
    );
}

#[test]
fn rfc4475_3_1_2_15_unsupported_sip_version_gets_505() {
    answered(
        "OPTIONS sip:t.watson@example.org SIP/7.0
Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw
Max-Forwards:     70
From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To:      T. Watson <sip:t.watson@example.org>
Call-ID: badvers.31417@c.example.com
CSeq:    1 OPTIONS
l: 0

",
        505,
        "unsupported_version",
    );
}

#[test]
fn rfc4475_3_1_2_16_cseq_method_mismatch() {
    answered(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0

",
        400,
        "cseq_method_mismatch",
    );
}

#[test]
fn rfc4475_3_1_2_17_unknown_method_with_cseq_mismatch() {
    answered(
        &format!("NEWMETHOD sip:user@example.com SIP/2.0\n{ESSENTIALS}CSeq: 8 INVITE\nl: 0\n\n"),
        400,
        "cseq_method_mismatch",
    );
}

#[test]
fn rfc4475_3_1_2_18_overlarge_response_code_is_dropped() {
    let err = Message::parse(crlf(&format!(
        "SIP/2.0 4294967301 better not break the receiver\n{ESSENTIALS}CSeq: 1 INVITE\nl: 0\n\n"
    )))
    .unwrap_err();
    assert_eq!(err, ParseError::BadStartLine);
}

#[test]
fn rfc4475_3_1_2_19_magic_cookie_alone_is_not_an_rfc3261_branch() {
    let m = valid(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK
Accept: application/sdp
Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n
CSeq: 8 OPTIONS
l: 0

",
    );
    assert!(!m.top_via().unwrap().unwrap().has_rfc3261_branch());
}

#[test]
fn rfc4475_3_1_2_missing_essentials_cannot_be_answered() {
    // insuf: no Call-ID, From or To. Readable, invalid, and impossible to answer: dropped.
    let m = Message::parse(crlf(
        "INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Type: application/sdp
l: 0

",
    ))
    .unwrap();
    assert_eq!(m.validate(), Err(Defect::MissingHeader(HeaderName::From)));
    assert!(!m.can_answer());
}

#[test]
fn rfc4475_3_1_2_10_escaped_headers_in_request_uri_are_accepted_liberally() {
    // The RFC allows rejecting or accepting; we accept, as URI ?headers are legal elsewhere.
    valid(&format!(
        "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\n{ESSENTIALS}CSeq: 1 INVITE\nl: 0\n\n"
    ));
}

#[test]
fn rfc4475_3_1_2_11_non_gmt_date_is_ignored() {
    // We never act on Date, so a malformed one does not make the request invalid.
    valid(&format!(
        "INVITE sip:user@example.com SIP/2.0\n{ESSENTIALS}CSeq: 1 INVITE\nDate: Fri, 01 Jan 2010 16:00:00 EST\nl: 0\n\n"
    ));
}

#[test]
fn rfc4475_3_3_9_multiple_values_in_single_value_headers() {
    answered(
        "INVITE sip:user@company.com SIP/2.0
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 INVITE
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
To: sip:other@example.net
From: sip:caller@example.net;tag=2923420123
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
Max-Forwards: 70
Content-Length: 0

",
        400,
        "duplicate_header",
    );
}

#[test]
fn rfc4475_3_3_8_max_forwards_zero_is_a_valid_request() {
    let m = valid(&format!(
        "OPTIONS sip:user@example.com SIP/2.0\n{ESSENTIALS}CSeq: 1 OPTIONS\nMax-Forwards: 0\nl: 0\n\n"
    ));
    assert_eq!(m.max_forwards().unwrap().unwrap(), 0);
}

#[test]
fn rfc4475_3_4_1_rfc2543_invite_without_branch_is_accepted() {
    let m = valid(
        "INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp
Content-Length: 0

",
    );
    assert_eq!(m.top_via().unwrap().unwrap().branch(), None);
    assert_eq!(m.from_tag(), None);
}

#[test]
fn unreadable_input_is_a_parse_error_not_a_panic() {
    for input in [
        &b""[..],
        b"\r\n\r\n",
        b"garbage",
        b"INVITE\r\n\r\n",
        b"SIP/2.0 20 OK\r\n\r\n",
        b"SIP/2.0 200OK\r\n\r\n",
        b"INVITE sip:a@b HTTP/1.1\r\n\r\n",
        b"\xff\xfe INVITE sip:a SIP/2.0\r\n\r\n",
    ] {
        assert!(
            Message::parse(Bytes::copy_from_slice(input)).is_err(),
            "{input:?}"
        );
    }
}
