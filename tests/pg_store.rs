//! The PostgreSQL state store against a real server: two stores on one database stand for two
//! instances. Migrations run once, a failure is one job whoever commits it, jobs and outbox rows
//! are claimed by one instance at a time and taken over when a lease runs out, the poll's lease
//! is held by one, and a rate-limit window opens once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::postgres::Postgres;
use common::*;
use reload_butler::qlik::event::ReloadEvent;
use reload_butler::store::pg::{PgOptions, PgStore};
use reload_butler::store::{NewDelivery, NewState, Outcome, Record, SharedStore, Written};

fn options(lease: Duration) -> PgOptions {
    PgOptions {
        ca_file: None,
        dedupe_ttl: Duration::from_secs(3600),
        lease,
        track_failing: true,
        recovery_jobs: true,
    }
}

async fn two(url: &str, lease: Duration) -> (Arc<PgStore>, Arc<PgStore>) {
    let options = options(lease);
    let (a, b) = tokio::join!(
        PgStore::connect(url, &options),
        PgStore::connect(url, &options)
    );
    (Arc::new(a.unwrap()), Arc::new(b.unwrap()))
}

fn failure(n: usize) -> ReloadEvent {
    reload_butler::qlik::event::decode(&distinct_failure(n)).unwrap()
}

fn slack_row(payload: &str) -> NewDelivery {
    NewDelivery {
        destination: "chat".into(),
        recipient: String::new(),
        payload: payload.into(),
        state: NewState::Pending,
        rate_limit: None,
        hold: None,
        silence_key: None,
    }
}

async fn commit(store: &PgStore, event: &ReloadEvent) -> Written {
    let failure = event.failure().unwrap();
    store
        .write(&[Record::Job {
            event,
            failure,
            topic: "t",
        }])
        .await
        .unwrap()[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_migrate_once() {
    let server = Postgres::shared();
    let url = server.database();
    let stores: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(
                async move { PgStore::connect(&url, &options(Duration::from_secs(30))).await },
            )
        })
        .collect();
    for store in stores {
        store.await.unwrap().unwrap();
    }
    let versions = server.query(&url, "SELECT version FROM schema_version");
    assert_eq!(
        versions,
        vec![vec!["1".to_owned()]],
        "one row, the current version"
    );
    PgStore::probe(&url, None).await.unwrap();
}

/// Another program's `schema_version` table (an `integer` column here) is refused with the
/// reason, by `run`'s migration and by `check`'s probe alike, not read as ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_version_table_of_another_program_is_refused() {
    let server = Postgres::shared();
    let url = server.database();
    server.query(
        &url,
        "CREATE TABLE schema_version (version integer NOT NULL); INSERT INTO schema_version VALUES (7)",
    );
    let migrate = PgStore::connect(&url, &options(Duration::from_secs(30)))
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        migrate.contains("schema_version is not reload-butler's"),
        "{migrate}"
    );
    let probe = PgStore::probe(&url, None).await.unwrap_err().to_string();
    assert!(
        probe.contains("schema_version is not reload-butler's"),
        "{probe}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_failure_committed_by_two_instances_at_once_is_one_job() {
    let server = Postgres::shared();
    let url = server.database();
    let (a, b) = two(&url, Duration::from_secs(30)).await;
    let events: Vec<ReloadEvent> = (0..50).map(failure).collect();
    let (ea, eb) = (events.clone(), events.clone());
    let (a2, b2) = (a.clone(), b.clone());
    let from_a = tokio::spawn(async move {
        let mut out = Vec::new();
        for e in &ea {
            out.push(commit(&a2, e).await);
        }
        out
    });
    let from_b = tokio::spawn(async move {
        let mut out = Vec::new();
        for e in eb.iter().rev() {
            out.push(commit(&b2, e).await);
        }
        out
    });
    let (from_a, from_b) = (from_a.await.unwrap(), from_b.await.unwrap());
    let jobs = from_a
        .iter()
        .chain(&from_b)
        .filter(|w| matches!(w, Written::Job(_)))
        .count();
    assert_eq!(
        jobs, 50,
        "each failure became one job: {from_a:?} {from_b:?}"
    );
    assert_eq!(
        server.query(&url, "SELECT count(*) FROM jobs"),
        vec![vec!["50".to_owned()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_is_routed_by_one_instance_and_taken_over_when_its_lease_runs_out() {
    let server = Postgres::shared();
    let url = server.database();
    let (a, b) = two(&url, Duration::from_millis(500)).await;
    for n in 0..10 {
        commit(&a, &failure(n)).await;
    }
    let (mine, theirs) = tokio::join!(a.unrouted_jobs(6), b.unrouted_jobs(6));
    let (mine, theirs) = (mine.unwrap(), theirs.unwrap());
    assert_eq!(mine.len() + theirs.len(), 10, "every job claimed once");
    assert!(
        mine.iter().all(|m| theirs.iter().all(|t| t.id != m.id)),
        "no job claimed twice"
    );
    // A routes its jobs; B dies with its claims: A takes them over once their lease ran out.
    for job in &mine {
        a.route_job(job.id, vec![slack_row("x")]).await.unwrap();
    }
    let mut taken = std::collections::BTreeSet::new();
    wait_until("A takes B's jobs over", Duration::from_secs(10), || {
        let got = futures_block(a.unrouted_jobs(32));
        taken.extend(got.into_iter().map(|j| j.id));
        taken.len() >= theirs.len()
    });
    let expected: std::collections::BTreeSet<i64> = theirs.iter().map(|j| j.id).collect();
    assert_eq!(taken, expected);
}

/// Runs a store future from a synchronous wait loop (inside a multi-threaded test runtime).
fn futures_block<T>(
    f: impl std::future::Future<Output = Result<T, reload_butler::store::StoreError>>,
) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outbox_row_is_sent_by_its_claimant_and_taken_over_after_its_lease() {
    let server = Postgres::shared();
    let url = server.database();
    let (a, b) = two(&url, Duration::from_millis(500)).await;
    let Written::Job(job) = commit(&a, &failure(1)).await else {
        panic!("a job")
    };
    a.unrouted_jobs(1).await.unwrap();
    a.route_job(job, vec![slack_row("p")]).await.unwrap();
    let claimed = a.due_work("chat", 8, &[], false).await.unwrap();
    assert_eq!(claimed.due.len(), 1);
    let row = claimed.due[0].id;
    // While A holds it (and renews it as busy), B gets nothing.
    let other = b.due_work("chat", 8, &[], false).await.unwrap();
    assert!(other.due.is_empty(), "claimed by A: {:?}", other.due);
    a.due_work("chat", 8, &[row], false).await.unwrap();
    assert!(b
        .due_work("chat", 8, &[], false)
        .await
        .unwrap()
        .due
        .is_empty());
    // A dies mid-send: B takes the row over after the lease, and A's late outcome is ignored.
    let mut taken = Vec::new();
    wait_until("B takes the row over", Duration::from_secs(10), || {
        taken = futures_block(b.due_work("chat", 8, &[], false)).due;
        !taken.is_empty()
    });
    assert_eq!(taken[0].id, row);
    let late = Outcome::Delivered {
        detail: "from A".into(),
    };
    a.record_attempts(&[(row, late)]).await.unwrap();
    let state = server.query(&url, &format!("SELECT state FROM outbox WHERE id = {row}"));
    assert_eq!(
        state,
        vec![vec!["pending".to_owned()]],
        "A no longer holds it"
    );
    let done = Outcome::Delivered {
        detail: "from B".into(),
    };
    assert_eq!(b.record_attempts(&[(row, done)]).await.unwrap(), 0);
    let state = server.query(
        &url,
        &format!("SELECT state, detail, attempts FROM outbox WHERE id = {row}"),
    );
    assert_eq!(
        state,
        vec![vec![
            "delivered".to_owned(),
            "from B".to_owned(),
            "1".to_owned()
        ]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_poll_lease_is_held_by_one_instance_until_it_lets_go() {
    let server = Postgres::shared();
    let url = server.database();
    let (a, b) = two(&url, Duration::from_secs(30)).await;
    let (a, b) = (SharedStore::postgres(a), SharedStore::postgres(b));
    let ttl = Duration::from_secs(60);
    assert!(a.hold_lease("poll", ttl).await.unwrap());
    assert!(!b.hold_lease("poll", ttl).await.unwrap());
    assert!(
        a.hold_lease("poll", ttl).await.unwrap(),
        "renewed by its holder"
    );
    a.release_lease("poll").await.unwrap();
    assert!(b.hold_lease("poll", ttl).await.unwrap());
    assert!(!a.hold_lease("poll", ttl).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_window_opens_once_across_instances() {
    let server = Postgres::shared();
    let url = server.database();
    let (a, b) = two(&url, Duration::from_secs(30)).await;
    let mut jobs = Vec::new();
    for n in 0..20 {
        let Written::Job(job) = commit(&a, &failure(n)).await else {
            panic!("a job")
        };
        jobs.push(job);
    }
    let limited = || NewDelivery {
        rate_limit: Some(("chat:app".into(), 3_600_000)),
        ..slack_row("p")
    };
    let routes = jobs.iter().enumerate().map(|(i, job)| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let job = *job;
        let row = limited();
        tokio::spawn(async move { store.route_job(job, vec![row]).await.unwrap() })
    });
    let mut pending = 0;
    for route in routes.collect::<Vec<_>>() {
        pending += route
            .await
            .unwrap()
            .iter()
            .filter(|d| d.state == NewState::Pending)
            .count();
    }
    assert_eq!(pending, 1, "one alert per window");
    assert_eq!(
        server.query(&url, "SELECT count(*) FROM outbox WHERE state = 'pending'"),
        vec![vec!["1".to_owned()]]
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_the_probe_without_the_password() {
    let url = format!(
        "postgres://rb:hunter2@127.0.0.1:{}/db?connect_timeout=2",
        free_port()
    );
    let error = PgStore::probe(&url, None).await.unwrap_err().to_string();
    assert!(!error.contains("hunter2"), "{error}");
    assert!(error.contains("PostgreSQL"), "{error}");
}

/// `reload-butler <args>` with a config whose store is `url`.
fn cli(dir: &std::path::Path, url: &str, args: &[&str]) -> std::process::Output {
    let path = dir.join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "mqtt: {{url: 'mqtt://127.0.0.1:1883'}}\nstate: {{url: '{url}'}}\n\
             tenants:\n  - {{id: t1, url: 'https://t1.eu.qlikcloud.com', auth: {{api_key: k}}}}\n"
        ),
    )
    .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_reload-butler"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .unwrap()
}

/// `check` means `run` starts: with `state.url` it connects, and refuses a server that does not
/// answer.
#[test]
fn check_connects_to_the_state_url() {
    let server = Postgres::shared();
    let dir = tempfile::tempdir().unwrap();
    let run_check = |url: &str| cli(dir.path(), url, &["check"]);
    let ok = run_check(&server.database());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let down = format!("postgres://rb:hunter2@127.0.0.1:{}/db", free_port());
    let refused = run_check(&down);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("state.url: cannot use the PostgreSQL database"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// Every other question and write of the shared store, as the console, the silences, the
/// router, the credential watch and the poll ask them, on PostgreSQL: the answers the SQLite
/// store gives for the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_silences_notices_and_poll_work_on_the_shared_store() {
    use reload_butler::config::Matcher;
    use reload_butler::store::{AlertFilter, NewNotice, Release, Resend, SilenceRow};

    let server = Postgres::shared();
    let url = server.database();
    let (pg, _) = two(&url, Duration::from_secs(30)).await;
    let store = SharedStore::postgres(pg.clone());
    let event = failure(7);
    let Written::Job(job) = commit(&pg, &event).await else {
        panic!("a job")
    };
    assert_eq!(store.unrouted_jobs(8).await.unwrap().len(), 1);
    let held = NewDelivery {
        destination: "digest".into(),
        hold: Some((0, Some("{\"n\":1}".into()))),
        ..slack_row("h")
    };
    let dead = NewDelivery {
        destination: "mail".into(),
        recipient: "ops@acme.com".into(),
        state: NewState::Dead("no template".into()),
        ..slack_row("d")
    };
    let silenced = NewDelivery {
        destination: "quiet".into(),
        state: NewState::Silenced("silence 1".into()),
        silence_key: Some("stored:1".into()),
        ..slack_row("s")
    };
    store
        .route_job(job, vec![slack_row("p"), held, dead, silenced])
        .await
        .unwrap();
    assert!(store.unrouted_jobs(8).await.unwrap().is_empty(), "routed");

    // The outbox: the pending row delivered, the held group released on its own.
    let work = store.due_work("chat", 8, Vec::new(), false).await.unwrap();
    let row = work.due[0].id;
    let delivered = Outcome::Delivered {
        detail: "ok".into(),
    };
    store
        .record_attempts(vec![(row, delivered)], true)
        .await
        .unwrap();
    let digest = store.due_work("digest", 8, Vec::new(), true).await.unwrap();
    assert_eq!(digest.closed.len(), 1, "{:?}", digest.closed);
    let ids = digest.closed[0].rows.iter().map(|r| r.id).collect();
    store.release_held(vec![Release::Each(ids)]).await.unwrap();
    assert_eq!(
        store
            .due_work("digest", 8, Vec::new(), false)
            .await
            .unwrap()
            .due
            .len(),
        1
    );

    // The console.
    let alerts = store.alerts(AlertFilter::default(), 10).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].deliveries.len(), 4);
    let only_dead = AlertFilter {
        outcome: Some("dead".into()),
        ..AlertFilter::default()
    };
    assert_eq!(
        store.alerts(only_dead, 10).await.unwrap()[0]
            .deliveries
            .len(),
        1
    );
    let one = store.alert(job).await.unwrap().unwrap();
    assert!(one
        .deliveries
        .iter()
        .any(|d| d.payload.as_deref() == Some("p")));
    assert_eq!(store.failing_now().await.unwrap().len(), 1);
    let dead_rows = store.dead_deliveries(10).await.unwrap();
    assert_eq!(dead_rows.len(), 1);
    let dead_id = dead_rows[0].0.deliveries[0].id;
    assert_eq!(store.last_delivered().await.unwrap()[0].0, "chat");
    assert!(matches!(
        store.resend_dead(dead_id).await.unwrap(),
        Resend::Queued { .. }
    ));
    assert!(matches!(
        store.resend_dead(dead_id).await.unwrap(),
        Resend::NotDead { .. }
    ));
    assert!(matches!(
        store.resend_dead(-1).await.unwrap(),
        Resend::Unknown
    ));

    // Silences, and resending what one silenced.
    let now = chrono::Utc::now().timestamp_millis();
    let silence = SilenceRow {
        matcher: Matcher {
            app: Some("a".into()),
            ..Matcher::default()
        },
        starts_at: now - 1000,
        ends_at: now + 3_600_000,
        comment: "upgrade".into(),
        resend: true,
    };
    let id = store
        .add_silence(silence.clone(), 2)
        .await
        .unwrap()
        .unwrap();
    store
        .add_silence(silence.clone(), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.add_silence(silence, 2).await.unwrap(),
        None,
        "at most 2"
    );
    assert_eq!(store.silences(false).await.unwrap().len(), 2);
    assert_eq!(store.silence_filters().await.unwrap().len(), 2);
    assert_eq!(store.silence_comment(id).await.unwrap(), "upgrade");
    assert!(store.end_silence(id).await.unwrap());
    assert!(store.remove_silence(id).await.unwrap());
    assert_eq!(
        store.resend_keys().await.unwrap(),
        vec!["stored:1".to_owned()]
    );
    assert_eq!(store.resend_silenced("stored:1").await.unwrap(), 1);
    assert_eq!(
        store.unrouted_jobs(8).await.unwrap().len(),
        1,
        "to be routed again"
    );

    // The router's look-ups, a credential notice once per interval, the poll.
    assert!(store
        .app_name(&event.tenant_id, &event.app_id)
        .await
        .unwrap()
        .is_some());
    let told = store
        .alerted_recipients(&event.tenant_id, &event.app_id, "chat", 0)
        .await
        .unwrap();
    assert_eq!(told, vec![String::new()]);
    let notice = || NewNotice {
        tenant: "t1".into(),
        label: "credential_expiring",
        key: "credential:expiring:t1".into(),
        every_ms: 86_400_000,
    };
    assert!(store
        .raise_notice(notice(), vec![slack_row("n")])
        .await
        .unwrap());
    assert!(!store
        .raise_notice(notice(), vec![slack_row("n")])
        .await
        .unwrap());
    assert_eq!(store.poll_watermark("t1").await.unwrap(), None);
    let found = store
        .commit_poll(
            "t1",
            vec![
                (failure(7), event.failure().unwrap()),
                (failure(8), event.failure().unwrap()),
            ],
            42,
        )
        .await
        .unwrap();
    assert!(matches!(found[0], Written::Duplicate { .. }), "{found:?}");
    assert!(matches!(found[1], Written::Job(_)), "{found:?}");
    assert_eq!(store.poll_watermark("t1").await.unwrap(), Some(42));
    assert!(store.pending_count().await.unwrap() >= 1);
    store.purge_history(0).await.unwrap();
    assert_eq!(pg.purge_expired_keys().await.unwrap(), 0);
    // Both failures are of the fixture's app: one streak of two.
    assert_eq!(pg.failing_apps().await.unwrap().len(), 1);
    assert_eq!(store.failing_now().await.unwrap()[0].failures, 2);
}

/// `silence add|list|remove` and `doctor` use the shared store too: a silence added from one
/// machine's CLI is in the database every instance reads.
#[test]
fn the_cli_silences_and_doctor_use_the_shared_store() {
    let server = Postgres::shared();
    let url = server.database();
    let dir = tempfile::tempdir().unwrap();
    let text = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let added = cli(
        dir.path(),
        &url,
        &[
            "silence",
            "add",
            "--app",
            "a1",
            "--for",
            "2h",
            "--comment",
            "db upgrade",
        ],
    );
    assert!(added.status.success(), "{}", text(&added));
    let listed = cli(dir.path(), &url, &["silence", "list"]);
    assert!(text(&listed).contains("db upgrade"), "{}", text(&listed));
    assert_eq!(
        server.query(&url, "SELECT comment FROM silences"),
        vec![vec!["db upgrade".to_owned()]]
    );
    let id = server.query(&url, "SELECT id FROM silences")[0][0].clone();
    let removed = cli(dir.path(), &url, &["silence", "remove", &id]);
    assert!(removed.status.success(), "{}", text(&removed));
    assert_eq!(
        server.query(&url, "SELECT count(*) FROM silences"),
        vec![vec!["0".to_owned()]]
    );
    let doctor = cli(dir.path(), &url, &["doctor"]);
    assert!(
        text(&doctor).contains("ok    state store: the PostgreSQL database (state.url) answers"),
        "{}",
        text(&doctor)
    );
}

/// Two instances release the same closed storm group: the first one's digest goes out; the
/// second, which saw one more row, marks nothing digested into a digest that does not list it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_group_is_released_once_across_instances() {
    use reload_butler::store::Release;

    let server = Postgres::shared();
    let url = server.database();
    let (a, b) = two(&url, Duration::from_secs(30)).await;
    let mut rows = Vec::new();
    for n in 0..3 {
        let Written::Job(job) = commit(&a, &failure(n)).await else {
            panic!("a job")
        };
        let held = NewDelivery {
            hold: Some((0, Some("{}".into()))),
            ..slack_row("one")
        };
        a.route_job(job, vec![held]).await.unwrap();
        rows.push(
            server.query(&url, &format!("SELECT id FROM outbox WHERE job_id = {job}"))[0][0]
                .parse::<i64>()
                .unwrap(),
        );
    }
    let first = Release::Digest {
        carrier: rows[0],
        payload: "digest of two".into(),
        listed: vec![rows[1]],
    };
    a.release_held(&[first]).await.unwrap();
    let late = Release::Digest {
        carrier: rows[0],
        payload: "digest of three".into(),
        listed: vec![rows[1], rows[2]],
    };
    b.release_held(&[late]).await.unwrap();
    let states = server.query(&url, "SELECT state, payload FROM outbox ORDER BY id");
    assert_eq!(
        states,
        vec![
            vec!["pending".to_owned(), "digest of two".to_owned()],
            vec!["digested".to_owned(), "one".to_owned()],
            vec!["held".to_owned(), "one".to_owned()],
        ]
    );
}

/// `sslmode=require` over rustls: the server's certificate is checked against `state.ca_file`
/// (or the system's roots without it), so a server whose CA is not trusted is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_server_is_checked_against_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let server = Postgres::start_tls(&pki);
    let url = server
        .database()
        .replace("sslmode=disable", "sslmode=require");
    PgStore::probe(&url, Some(&pki.ca_file)).await.unwrap();
    let options = PgOptions {
        ca_file: Some(pki.ca_file.clone()),
        ..options(Duration::from_secs(30))
    };
    let store = PgStore::connect(&url, &options).await.unwrap();
    let connections = "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
                       WHERE a.application_name = 'reload-butler'";
    assert_eq!(
        server.query(&url, connections),
        vec![vec!["t".to_owned()]],
        "the store's one connection is TLS"
    );
    drop(store);
    let wrong = PgStore::probe(&url, Some(&pki.other_ca_file))
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("certificate"), "{wrong}");
    let system = PgStore::probe(&url, None).await.unwrap_err();
    assert!(system.to_string().contains("certificate"), "{system}");
}
