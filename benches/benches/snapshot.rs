//! Routing snapshot benchmark (issue: provisioning store): 100,000 users on SQLite.
//!
//! Figures: bulk insert of 100,000 users in one transaction (the import write path, with
//! AES-GCM sealing), building the snapshot from the database, and lookups by tenant FQDN, by
//! E.164 and by contact token (ns per lookup and allocations per lookup), and the license
//! report over all of them (the count behind `teamsgw license report`, the API and the gauges).
//!
//! `cargo bench -p teamsgw-benches --bench snapshot`
//!
//! A debug build (`cargo test -p teamsgw-benches --bench snapshot`, which the README's test
//! command runs) is a short run of 2,000 users: its figures mean nothing, but its checks (every
//! user in the snapshot, every lookup hits, every user counted) run in CI.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use teamsgw_benches::store::{provisioned_store, user};
use teamsgw_benches::{CountingAllocator, allocations};
use teamsgw_store::NewUser;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const SHORT: bool = cfg!(debug_assertions);
const USERS: usize = if SHORT { 2_000 } else { 100_000 };
const ENTERPRISES: usize = 100;
const LOOKUPS: usize = if SHORT { 20_000 } else { 1_000_000 };

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = provisioned_store(dir.path(), ENTERPRISES).await;
    let users: Vec<NewUser> = (0..USERS).map(|i| user(i % ENTERPRISES, i)).collect();
    let started = Instant::now();
    store.add_users(&users, &key).await.unwrap();
    let insert = started.elapsed();
    println!(
        "insert {USERS} users (one transaction, sealed): {:.2} s ({:.0} users/s)",
        insert.as_secs_f64(),
        USERS as f64 / insert.as_secs_f64()
    );

    let mut best = f64::MAX;
    let mut snapshot = None;
    for _ in 0..3 {
        let started = Instant::now();
        let s = store.load_snapshot().await.unwrap();
        best = best.min(started.elapsed().as_secs_f64());
        snapshot = Some(s);
    }
    let snapshot = snapshot.unwrap();
    assert_eq!(snapshot.users(), USERS);
    println!(
        "build snapshot of {USERS} users from SQLite: {:.0} ms (best of 3)",
        best * 1e3
    );

    let fqdns: Vec<String> = (0..ENTERPRISES)
        .map(|e| format!("e{e}.teams.carrier.example"))
        .collect();
    let enterprise_ids: Vec<String> = fqdns
        .iter()
        .map(|f| snapshot.direct_route(f).unwrap().enterprise_id.clone())
        .collect();
    let numbers: Vec<String> = (0..USERS).map(|i| format!("+1555{i:07}")).collect();
    let tokens: Vec<String> = (0..USERS)
        .map(|i| {
            snapshot
                .user_by_number(&enterprise_ids[i % ENTERPRISES], &numbers[i])
                .unwrap()
                .contact_token
                .clone()
        })
        .collect();

    let measure = |name: &str, f: &dyn Fn(usize) -> bool| {
        let allocs = allocations().0;
        let started = Instant::now();
        let mut hits = 0usize;
        for n in 0..LOOKUPS {
            // A stride that defeats the cache-friendly sequential order.
            let i = n.wrapping_mul(7_919) % USERS;
            hits += usize::from(black_box(f(i)));
        }
        let ns = started.elapsed().as_nanos() as f64 / LOOKUPS as f64;
        let per = (allocations().0 - allocs) as f64 / LOOKUPS as f64;
        assert_eq!(hits, LOOKUPS, "{name}: every lookup must hit");
        println!("lookup by {name}: {ns:.0} ns, {per:.2} allocs");
    };
    // What the loop costs without a lookup: fetching the (cache-cold) input strings.
    measure("nothing (loop and input baseline)", &|i| {
        !numbers[i].is_empty() && !enterprise_ids[i % ENTERPRISES].is_empty()
    });
    measure("tenant FQDN", &|i| {
        snapshot.direct_route(&fqdns[i % ENTERPRISES]).is_some()
    });
    measure("E.164", &|i| {
        snapshot
            .user_by_number(&enterprise_ids[i % ENTERPRISES], &numbers[i])
            .is_some()
    });
    measure("contact token", &|i| {
        snapshot.user_by_contact_token(&tokens[i]).is_some()
    });

    let settings = teamsgw::config::LicenseSettings::default();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let report = teamsgw::operations::license_report::build(&store, None, &settings)
            .await
            .unwrap();
        best = best.min(started.elapsed().as_secs_f64());
        let monitored: u32 = report.iter().map(|r| r.monitored_users).sum();
        assert_eq!(monitored as usize, USERS);
    }
    println!(
        "license report over {USERS} users in {ENTERPRISES} enterprises: {:.0} ms (best of 3)",
        best * 1e3
    );
    store.close().await;
}
