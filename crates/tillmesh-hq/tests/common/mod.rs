//! What the HQ tests share: a fresh PostgreSQL database per test.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

const DATABASE_URL_VARIABLE: &str = "TILLMESH_TEST_DATABASE_URL";
const DATABASE_PREFIX: &str = "tillmesh_t_";
/// Test databases older than this are leftovers of killed runs.
const STALE_AFTER_SECS: u64 = 3_600;
static STALE_DROPPED: AtomicBool = AtomicBool::new(false);

/// Runs `test` with the URL of a fresh database, dropped afterwards (also when `test` panics);
/// prints `SKIPPED` and returns when no server is configured.
pub(crate) async fn on_pg_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(DATABASE_URL_VARIABLE) else {
        // Straight to stderr, past the test harness's capture, so that it shows.
        let test = std::thread::current().name().unwrap_or("a test").to_string();
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test}: PostgreSQL tests (set {DATABASE_URL_VARIABLE}, e.g. \
             postgres://postgres@127.0.0.1:5432/test)"
        );
        return;
    };
    let mut admin = PgConnection::connect(&admin_url).await.expect("connect to TILLMESH_TEST_DATABASE_URL");
    drop_stale_databases(&mut admin).await;
    let name = format!("{DATABASE_PREFIX}{}_{}", unix_secs(), &Uuid::new_v4().simple().to_string()[..12]);
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create a test database");
    let outcome = tokio::spawn(test(with_database(&admin_url, &name))).await;
    if let Err(error) = admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await {
        let _ = writeln!(std::io::stderr(), "could not drop test database {name}: {error}");
    }
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("test task: {error}"),
        }
    }
}

/// Drops test databases left by runs killed over an hour ago (once per test binary).
async fn drop_stale_databases(admin: &mut PgConnection) {
    if STALE_DROPPED.swap(true, Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database")
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
    let cutoff = unix_secs().saturating_sub(STALE_AFTER_SECS);
    for name in names {
        let created = name
            .strip_prefix(DATABASE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        let well_formed = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if well_formed && created.is_some_and(|created| created < cutoff) {
            let _ = admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
        }
    }
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |scheme| scheme + 3);
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[test]
fn database_urls_are_rewritten() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
}
