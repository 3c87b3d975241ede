//! What the console (`admin/console/`) reads, and its one write besides silences: resending a
//! dead delivery. Read-only queries over `jobs`, `outbox`, `failing_apps`, `app_names` and
//! `silences`, in plain SQL (no SQLite-only functions), so that another backend can share them.

use rusqlite::{params, OptionalExtension, Row};

use super::{now_ms, Store, StoreError};
use crate::qlik::event::ReloadEvent;

/// Most alerts one list shows.
pub const ALERTS_MAX: usize = 200;

/// An app whose last known reload failed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FailingApp {
    pub tenant_id: String,
    pub app_id: String,
    pub app_name: Option<String>,
    /// First failure of the streak (unix ms).
    pub since: i64,
    /// Failed reloads in a row.
    pub failures: i64,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
}

/// Which alerts a list shows; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    pub tenant: Option<String>,
    /// An app id, or an app name (any case).
    pub app: Option<String>,
    pub destination: Option<String>,
    /// An outbox state: pending, held, delivered, suppressed, silenced, digested, dead.
    pub outcome: Option<String>,
}

/// One alert (a job) and what became of it at each destination.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub created_at: i64,
    /// `failure` or `recovery`.
    pub kind: String,
    /// `reload_failed`, `automation_failed`, `recovered`, ...
    pub failure: String,
    pub tenant_id: String,
    pub app_id: String,
    pub app_name: Option<String>,
    pub reload_id: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub deliveries: Vec<DeliveryRow>,
}

/// One outbox row: a destination (and recipient) of an alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub job_id: i64,
    pub destination: String,
    /// Email address; empty for Slack and Teams.
    pub recipient: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub updated_at: i64,
    /// The service's answer to the last failure.
    pub last_error: Option<String>,
    /// The receipt, or why it was suppressed, silenced or digested.
    pub detail: Option<String>,
    /// The rendered message as stored (`notify::Payload` JSON); only in [`Store::alert`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

/// What a resend found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resend {
    /// Back in the outbox as pending, due now.
    Queued {
        job_id: i64,
        destination: String,
    },
    /// Not dead (any more): e.g. the first click already put it back. Nothing changed.
    NotDead {
        state: String,
    },
    /// Dead before anything was rendered (no recipients, a template error): nothing to send.
    NothingToSend,
    Unknown,
}

const DELIVERY_COLUMNS: &str = "o.id, o.job_id, o.destination, o.recipient, o.state, o.attempts,
    o.next_attempt_at, o.updated_at, o.last_error, o.detail";

fn delivery(r: &Row) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        job_id: r.get(1)?,
        destination: r.get(2)?,
        recipient: r.get(3)?,
        state: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        updated_at: r.get(7)?,
        last_error: r.get(8)?,
        detail: r.get(9)?,
        payload: None,
    })
}

const JOB_COLUMNS: &str = "j.id, j.created_at, j.kind, j.failure, j.tenant_id, j.app_id,
    j.reload_id, j.event, n.name";

/// What an alert list shows of a stored event (JSON): the app's name (the event's, else the
/// `remembered` one), the error code and the error message. A stored event that no longer
/// decodes leaves the name to `remembered` and the error out.
pub(super) fn summary(
    event: Option<&str>,
    remembered: Option<String>,
) -> (Option<String>, Option<String>, Option<String>) {
    let event: Option<ReloadEvent> = event.and_then(|json| serde_json::from_str(json).ok());
    let (name, (code, message)) = match event {
        Some(e) => (e.app_name.clone(), e.error_summary()),
        None => (None, (None, None)),
    };
    (name.filter(|n| !n.is_empty()).or(remembered), code, message)
}

/// A job row into an [`AlertRow`] without deliveries. A stored event that no longer decodes
/// leaves the name and the error out.
fn alert(r: &Row) -> rusqlite::Result<AlertRow> {
    let json: String = r.get(7)?;
    let (name, code, message) = summary(Some(&json), r.get(8)?);
    Ok(AlertRow {
        id: r.get(0)?,
        created_at: r.get(1)?,
        kind: r.get(2)?,
        failure: r.get(3)?,
        tenant_id: r.get(4)?,
        app_id: r.get(5)?,
        app_name: name,
        reload_id: r.get(6)?,
        error_code: code,
        error_message: message,
        deliveries: Vec::new(),
    })
}

impl Store {
    /// Apps failing now, the longest streak first. Kept while the daemon tracks failing apps
    /// (recovery notices or the admin endpoint).
    pub fn failing_now(&self) -> Result<Vec<FailingApp>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT f.tenant_id, f.app_id, f.since, f.failures, n.name,
                    (SELECT j.event FROM jobs j
                     WHERE j.tenant_id = f.tenant_id AND j.app_id = f.app_id AND j.kind = 'failure'
                     ORDER BY j.id DESC LIMIT 1)
                 FROM failing_apps f
                 LEFT JOIN app_names n ON n.tenant_id = f.tenant_id AND n.app_id = f.app_id
                 ORDER BY f.since, f.tenant_id, f.app_id",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], |r| {
                let json: Option<String> = r.get(5)?;
                let (name, code, message) = summary(json.as_deref(), r.get(4)?);
                Ok(FailingApp {
                    tenant_id: r.get(0)?,
                    app_id: r.get(1)?,
                    since: r.get(2)?,
                    failures: r.get(3)?,
                    app_name: name,
                    last_error_code: code,
                    last_error: message,
                })
            })
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))
    }

    /// The newest alerts that match `filter` (at most `limit`, up to [`ALERTS_MAX`]), each
    /// with its deliveries; a destination or outcome filter keeps only the matching ones.
    pub fn alerts(&self, filter: &AlertFilter, limit: usize) -> Result<Vec<AlertRow>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j
             LEFT JOIN app_names n ON n.tenant_id = j.tenant_id AND n.app_id = j.app_id
             WHERE (?1 IS NULL OR j.tenant_id = ?1)
               AND (?2 IS NULL OR j.app_id = ?2 OR lower(n.name) = lower(?2))
               AND ((?3 IS NULL AND ?4 IS NULL) OR EXISTS (
                    SELECT 1 FROM outbox o WHERE o.job_id = j.id
                      AND (?3 IS NULL OR o.destination = ?3) AND (?4 IS NULL OR o.state = ?4)))
             ORDER BY j.id DESC LIMIT ?5"
        );
        let f = filter;
        let mut alerts: Vec<AlertRow> = {
            let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sqlite(e))?;
            let rows = stmt
                .query_map(
                    params![
                        f.tenant,
                        f.app,
                        f.destination,
                        f.outcome,
                        limit.min(ALERTS_MAX) as i64
                    ],
                    alert,
                )
                .map_err(|e| self.sqlite(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))?
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox o WHERE o.job_id = ?1
               AND (?2 IS NULL OR o.destination = ?2) AND (?3 IS NULL OR o.state = ?3)
             ORDER BY o.destination, o.recipient"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sqlite(e))?;
        for a in &mut alerts {
            let rows = stmt
                .query_map(params![a.id, f.destination, f.outcome], delivery)
                .map_err(|e| self.sqlite(e))?;
            a.deliveries = rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))?;
        }
        Ok(alerts)
    }

    /// One alert with every delivery and its payload as rendered (and sent).
    pub fn alert(&self, id: i64) -> Result<Option<AlertRow>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j
             LEFT JOIN app_names n ON n.tenant_id = j.tenant_id AND n.app_id = j.app_id
             WHERE j.id = ?1"
        );
        let found = self
            .conn
            .query_row(&sql, params![id], alert)
            .optional()
            .map_err(|e| self.sqlite(e))?;
        let Some(mut found) = found else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS}, p.payload FROM outbox o
             LEFT JOIN outbox_payloads p ON p.id = o.id
             WHERE o.job_id = ?1 ORDER BY o.destination, o.recipient"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map(params![id], |r| {
                let mut d = delivery(r)?;
                d.payload = r.get::<_, Option<String>>(10)?.filter(|p| !p.is_empty());
                Ok(d)
            })
            .map_err(|e| self.sqlite(e))?;
        found.deliveries = rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))?;
        Ok(Some(found))
    }

    /// Dead deliveries, the newest first, each with its alert (whose `deliveries` holds only
    /// it); `resendable` is false for those that have nothing to send.
    pub fn dead_deliveries(&self, limit: usize) -> Result<Vec<(AlertRow, bool)>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS}, {DELIVERY_COLUMNS}, coalesce(p.payload, '') <> '' FROM outbox o
             JOIN jobs j ON j.id = o.job_id
             LEFT JOIN outbox_payloads p ON p.id = o.id
             LEFT JOIN app_names n ON n.tenant_id = j.tenant_id AND n.app_id = j.app_id
             WHERE o.state = 'dead' ORDER BY o.updated_at DESC, o.id DESC LIMIT ?1"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map(params![limit.min(ALERTS_MAX) as i64], |r| {
                let mut a = alert(r)?;
                let d = DeliveryRow {
                    id: r.get(9)?,
                    job_id: r.get(10)?,
                    destination: r.get(11)?,
                    recipient: r.get(12)?,
                    state: r.get(13)?,
                    attempts: r.get(14)?,
                    next_attempt_at: r.get(15)?,
                    updated_at: r.get(16)?,
                    last_error: r.get(17)?,
                    detail: r.get(18)?,
                    payload: None,
                };
                a.deliveries.push(d);
                Ok((a, r.get::<_, bool>(19)?))
            })
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))
    }

    /// When each destination last delivered something, as (destination, unix ms).
    pub fn last_delivered(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT destination, max(updated_at) FROM outbox WHERE state = 'delivered'
                 GROUP BY destination ORDER BY destination",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))
    }

    /// Puts a dead delivery back in the outbox: pending, due now, one more attempt. Its
    /// attempts and last error are kept (the history); the payload is sent as rendered then.
    /// Only a row that is dead changes, so a second click finds it no longer dead.
    pub fn resend_dead(&mut self, id: i64) -> Result<Resend, StoreError> {
        let now = now_ms();
        self.in_transaction(|tx| {
            let found: Option<(String, bool, i64, String)> = tx
                .query_row(
                    "SELECT o.state, coalesce(p.payload, '') <> '', o.job_id, o.destination
                     FROM outbox o LEFT JOIN outbox_payloads p ON p.id = o.id WHERE o.id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((state, sendable, job_id, destination)) = found else {
                return Ok(Resend::Unknown);
            };
            if state != "dead" {
                return Ok(Resend::NotDead { state });
            }
            if !sendable {
                return Ok(Resend::NothingToSend);
            }
            let changed = tx.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, updated_at = ?2,
                    detail = 'resent from the console'
                 WHERE id = ?1 AND state = 'dead'",
                params![id, now],
            )?;
            Ok(if changed == 1 {
                Resend::Queued {
                    job_id,
                    destination,
                }
            } else {
                Resend::NotDead { state }
            })
        })
    }

    /// Ends a silence now (it stays listed with `all`); false when there is none in force or
    /// still to come with that id. What it silenced with `resend` is then routed again.
    pub fn end_silence(&mut self, id: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        self.conn
            .execute(
                "UPDATE silences SET ends_at = ?2,
                    starts_at = CASE WHEN starts_at > ?2 THEN ?2 ELSE starts_at END
                 WHERE id = ?1 AND ends_at > ?2",
                params![id, now],
            )
            .map(|n| n > 0)
            .map_err(|e| self.sqlite(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewDelivery, NewState};

    fn store_with_alert(dir: &std::path::Path) -> (Store, i64) {
        let (mut store, job) = crate::store::store_with_job(dir, true);
        let row = |destination: &str, payload: &str, state| NewDelivery {
            destination: destination.into(),
            recipient: String::new(),
            payload: payload.into(),
            state,
            rate_limit: None,
            hold: None,
            silence_key: None,
        };
        store
            .route_job(
                job,
                vec![
                    row(
                        "chat",
                        r#"{"kind":"slack","body":{"text":"x"}}"#,
                        NewState::Pending,
                    ),
                    row("cards", "", NewState::Dead("no template".into())),
                ],
            )
            .unwrap();
        (store, job)
    }

    fn state(store: &Store, destination: &str) -> (String, i64) {
        store
            .conn
            .query_row(
                "SELECT state, attempts FROM outbox WHERE destination = ?1",
                params![destination],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    #[test]
    fn alerts_are_listed_with_their_outcomes_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let (store, job) = store_with_alert(dir.path());
        let all = store.alerts(&AlertFilter::default(), 10).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, job);
        assert_eq!(
            all[0].app_name.as_deref(),
            Some("Sales Dashboard <EU> & \"Nordics\"")
        );
        assert_eq!(
            all[0].error_code.as_deref(),
            Some("EngineReloadScriptError")
        );
        assert_eq!(all[0].deliveries.len(), 2);
        let dead = AlertFilter {
            outcome: Some("dead".into()),
            ..AlertFilter::default()
        };
        let found = store.alerts(&dead, 10).unwrap();
        assert_eq!(found[0].deliveries.len(), 1, "only the matching delivery");
        assert_eq!(
            found[0].deliveries[0].detail.as_deref(),
            Some("no template")
        );
        let by_name = AlertFilter {
            app: Some("SALES DASHBOARD <EU> & \"NORDICS\"".into()),
            ..AlertFilter::default()
        };
        assert_eq!(
            store.alerts(&by_name, 10).unwrap().len(),
            1,
            "by name, any case"
        );
        let other = AlertFilter {
            tenant: Some("nope".into()),
            ..AlertFilter::default()
        };
        assert!(store.alerts(&other, 10).unwrap().is_empty());
        let one = store.alert(job).unwrap().unwrap();
        assert!(one.deliveries.iter().any(|d| d.payload.is_some()));
        assert_eq!(store.alert(job + 1).unwrap(), None);
        let failing = store.failing_now().unwrap();
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].failures, 1);
        assert_eq!(
            failing[0].last_error.as_deref(),
            Some("Unknown statement: ThisFailsForSure")
        );
    }

    #[test]
    fn a_dead_delivery_is_resent_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, job) = store_with_alert(dir.path());
        let id: i64 = store
            .conn
            .query_row(
                "SELECT id FROM outbox WHERE destination = 'chat'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            store.resend_dead(id).unwrap(),
            Resend::NotDead {
                state: "pending".into()
            }
        );
        store
            .record_attempts(&[(
                id,
                crate::store::Outcome::Dead {
                    error: "HTTP 404 no_service".into(),
                },
            )])
            .unwrap();
        let dead = store.dead_deliveries(10).unwrap();
        assert_eq!(dead.len(), 2);
        assert!(dead
            .iter()
            .any(|(a, resendable)| *resendable && a.deliveries[0].id == id));
        assert_eq!(
            store.resend_dead(id).unwrap(),
            Resend::Queued {
                job_id: job,
                destination: "chat".into()
            }
        );
        assert_eq!(state(&store, "chat"), ("pending".into(), 1), "history kept");
        let due = store.due_deliveries("chat", 10, &[]).unwrap();
        assert_eq!(due.len(), 1, "due now");
        assert!(matches!(
            store.resend_dead(id).unwrap(),
            Resend::NotDead { .. }
        ));
        assert_eq!(
            store.due_deliveries("chat", 10, &[]).unwrap().len(),
            1,
            "queued once"
        );
        let cards: i64 = store
            .conn
            .query_row(
                "SELECT id FROM outbox WHERE destination = 'cards'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(store.resend_dead(cards).unwrap(), Resend::NothingToSend);
        assert_eq!(store.resend_dead(9999).unwrap(), Resend::Unknown);
    }

    #[test]
    fn a_silence_ends_now_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = store_with_alert(dir.path());
        let matcher = crate::config::Matcher {
            app: Some("a".into()),
            ..crate::config::Matcher::default()
        };
        let now = now_ms();
        let id = store
            .add_silence(&matcher, now + 60_000, now + 120_000, "later", false)
            .unwrap();
        assert!(store.end_silence(id).unwrap());
        assert!(!store.end_silence(id).unwrap(), "over already");
        assert!(store.silences(false).unwrap().is_empty());
        let all = store.silences(true).unwrap();
        assert!(all[0].starts_at <= all[0].ends_at, "{all:?}");
    }
}
