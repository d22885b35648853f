//! Web console render benchmark (issue: web console): the enterprises overview with 1,000
//! enterprises and 100,000 users (target < 200 ms server-side), and the license page of an
//! enterprise with 10,000 users (target < 100 ms), on SQLite. Half the enterprises (the odd
//! ones) are Operator Connect, their users counted by their OC numbers (issue 32), and
//! `license report` over all of them is timed as the CLI runs it. Each is timed as the handler
//! does it: gathering (the license report and the rest, counted from the daemon's license
//! snapshot, plus the routing snapshot and, for the license page, the audit rows from the
//! store) and rendering the HTML, best of 5. Loading the license snapshot is the reload's
//! cost, not the page's; it is timed on its own.
//!
//! `cargo bench -p teamsgw-benches --bench console`
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use teamsgw::admin::console::license::{LicensePage, Range};
use teamsgw::admin::console::overview::{Overview, Params};
use teamsgw::admin::console::session::Session;
use teamsgw::config::LicenseSettings;
use teamsgw::operations::license_report::{self, CountedLicenses};
use teamsgw_benches::store::{assign_oc_numbers, provisioned_store_with, user};
use teamsgw_benches::{CountingAllocator, allocations, live_bytes};
use teamsgw_store::NewUser;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const ENTERPRISES: usize = 1_000;
const USERS: usize = 100_000;
/// Enterprise 0 is the big one of the license page; the rest share what is left.
const BIG: usize = 10_000;

/// Best of 5 of `f`: (ms gathering, ms rendering, allocations, page bytes).
async fn best<G, T>(
    mut gather: impl FnMut() -> G,
    render: impl Fn(&T) -> String,
) -> (f64, f64, u64, usize)
where
    G: std::future::Future<Output = T>,
{
    let mut out = (f64::MAX, f64::MAX, u64::MAX, 0);
    for _ in 0..5 {
        let allocs = allocations().0;
        let started = Instant::now();
        let data = gather().await;
        let gathered = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let html = render(&data);
        let rendered = started.elapsed().as_secs_f64() * 1e3;
        let n = allocations().0 - allocs;
        if gathered + rendered < out.0 + out.1 {
            out = (gathered, rendered, n, html.len());
        }
    }
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let oc = |e: usize| e % 2 == 1;
    let (store, key) = provisioned_store_with(dir.path(), ENTERPRISES, oc).await;
    let users: Vec<NewUser> = (0..USERS)
        .map(|i| {
            let e = if i < BIG {
                0
            } else {
                1 + i % (ENTERPRISES - 1)
            };
            user(e, i)
        })
        .collect();
    store.add_users(&users, &key).await.unwrap();
    let oc_users: Vec<NewUser> = users
        .iter()
        .enumerate()
        .filter(|(i, _)| *i >= BIG && oc(1 + i % (ENTERPRISES - 1)))
        .map(|(_, u)| u.clone())
        .collect();
    let started = Instant::now();
    assign_oc_numbers(&store, &oc_users).await;
    println!(
        "{} OC numbers assigned by import in {:.1} s",
        oc_users.len(),
        started.elapsed().as_secs_f64()
    );
    let snapshot = store.load_snapshot().await.unwrap();
    assert_eq!(snapshot.users(), USERS);
    let license = LicenseSettings::default();
    let session = Session {
        id: "bench".into(),
        csrf: "bench".into(),
    };
    license_report::record_audit(&store, &license, None)
        .await
        .unwrap();

    let mut load = f64::MAX;
    let mut licenses = None;
    let mut held = 0;
    for _ in 0..3 {
        drop(licenses.take());
        let live = live_bytes();
        let started = Instant::now();
        licenses = Some(store.load_license_snapshot().await.unwrap());
        load = load.min(started.elapsed().as_secs_f64() * 1e3);
        held = live_bytes().saturating_sub(live);
    }
    let started = Instant::now();
    let counted = CountedLicenses::count(Arc::new(licenses.unwrap()), &license).unwrap();
    let count = started.elapsed().as_secs_f64() * 1e3;
    println!(
        "license snapshot of {ENTERPRISES} enterprises, {USERS} users (after every routing reload, in its own task): {load:.0} ms loading (best of 3), {count:.0} ms counting, {} MiB held",
        held / (1024 * 1024)
    );

    let reports = license_report::reports(counted.facts.enterprises(), &license).unwrap();
    let oc_counted: u32 = reports
        .iter()
        .map(|r| r.factors.operator_connect.counted)
        .sum();
    assert_eq!(
        oc_counted as usize,
        oc_users.len(),
        "every OC user counts under OC"
    );
    let mut cli = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let all = license_report::build(&store, None, &license).await.unwrap();
        cli = cli.min(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(all.len(), ENTERPRISES);
    }
    println!(
        "license report (the CLI: load and count), {ENTERPRISES} enterprises half Operator Connect, {USERS} users ({oc_counted} under OC): {cli:.0} ms (best of 3)"
    );

    let (gather, render, allocs, bytes) = best(
        || async { Overview::gather(&counted, Some(&snapshot), Vec::new(), Vec::new(), &license) },
        |o| o.as_ref().unwrap().render(&Params::default(), &session).0,
    )
    .await;
    println!(
        "enterprises overview, {ENTERPRISES} enterprises, {USERS} users: {:.1} ms ({gather:.1} ms gathering, {render:.1} ms rendering), {allocs} allocations, {} KiB of HTML (target < 200 ms)",
        gather + render,
        bytes / 1024
    );

    let today = license_report::today();
    let range = Range {
        from: today.clone(),
        to: today,
        ..Range::default()
    };
    let (gather, render, allocs, bytes) = best(
        || {
            LicensePage::gather(
                &store,
                &counted.facts,
                "Enterprise 0",
                &license,
                (range.from.clone(), range.to.clone()),
            )
        },
        |p| p.as_ref().unwrap().render(&range, &session).0,
    )
    .await;
    println!(
        "license page, {BIG} users: {:.1} ms ({gather:.1} ms gathering, {render:.1} ms rendering), {allocs} allocations, {} KiB of HTML (target < 100 ms)",
        gather + render,
        bytes / 1024
    );
    store.close().await;
}
