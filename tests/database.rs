//! The provisioning database on SQLite and on a real PostgreSQL started by the test, and a
//! database outage under the running daemon: the last routing snapshot keeps serving, reload
//! errors are counted, and the next reload after the restart succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use teamsgw_store::{Backend, Store};
use teamsgw_tests::postgres::Postgres;
use teamsgw_tests::{Daemon, Ports, test_config};

async fn migrate_and_load(url: &str, backend: Backend) {
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.backend(), backend);
    assert_eq!(store.schema_version().await.unwrap(), 2);
    assert_eq!(store.load_snapshot().await.unwrap().direct_routes(), 0);
    store.close().await;
    // Opening a migrated database again changes nothing.
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 2);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_migrates_on_sqlite_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    migrate_and_load(
        &format!("sqlite://{}/teamsgw.db", dir.path().display()),
        Backend::Sqlite,
    )
    .await;
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    migrate_and_load(&pg.url, Backend::Postgres).await;
}

#[test]
fn database_outage_keeps_the_snapshot_serving_and_counts_reload_errors() {
    let pg = Postgres::start();
    let ports = Ports::new();
    let config = test_config(&ports, "").replace("sqlite://var/teamsgw.db", &pg.url);
    let mut daemon = Daemon::start(&config, &ports);
    daemon.wait_ready(Duration::from_secs(30));
    let ok = "teamsgw_snapshot_reloads_total{result=\"ok\"}";
    let errors = "teamsgw_snapshot_reloads_total{result=\"error\"}";
    assert_eq!(daemon.metric(ok), Some(1.0));

    pg.stop();
    daemon.signal("HUP");
    daemon.wait_for(Duration::from_secs(30), "a failed snapshot reload", || {
        daemon.metric(errors) >= Some(1.0)
    });
    let (status, body) = daemon.get("/readyz");
    assert_eq!(status, 200, "the previous snapshot keeps serving: {body}");
    assert!(body.contains("snapshot_last_error"), "{body}");
    assert!(daemon.log().contains("routing snapshot reload failed"));

    pg.restart();
    daemon.signal("HUP");
    daemon.wait_for(
        Duration::from_secs(30),
        "a successful reload after the restart",
        || daemon.metric(ok) >= Some(2.0),
    );
    assert_eq!(daemon.get("/readyz").0, 200);
}
