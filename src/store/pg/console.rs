//! What the console reads on PostgreSQL, and resending a dead delivery: the queries of
//! `store/console.rs` with PostgreSQL's parameters and types.

use tokio_postgres::Row;

use super::{pg, PgStore};
use crate::store::console::summary;
use crate::store::{
    now_ms, AlertFilter, AlertRow, DeliveryRow, FailingApp, Resend, StoreError, ALERTS_MAX,
};

const DELIVERY_COLUMNS: &str = "o.id, o.job_id, o.destination, o.recipient, o.state, o.attempts,
    o.next_attempt_at, o.updated_at, o.last_error, o.detail";

const JOB_COLUMNS: &str = "j.id, j.created_at, j.kind, j.failure, j.tenant_id, j.app_id,
    j.reload_id, j.event, n.name";

/// The delivery columns starting at `at`.
fn delivery(r: &Row, at: usize) -> DeliveryRow {
    DeliveryRow {
        id: r.get(at),
        job_id: r.get(at + 1),
        destination: r.get(at + 2),
        recipient: r.get(at + 3),
        state: r.get(at + 4),
        attempts: r.get(at + 5),
        next_attempt_at: r.get(at + 6),
        updated_at: r.get(at + 7),
        last_error: r.get(at + 8),
        detail: r.get(at + 9),
        payload: None,
    }
}

/// The job columns as an alert without deliveries; see `store/console.rs`.
fn alert(r: &Row) -> AlertRow {
    let (name, code, message) = summary(Some(r.get(7)), r.get(8));
    AlertRow {
        id: r.get(0),
        created_at: r.get(1),
        kind: r.get(2),
        failure: r.get(3),
        tenant_id: r.get(4),
        app_id: r.get(5),
        app_name: name,
        reload_id: r.get(6),
        error_code: code,
        error_message: message,
        deliveries: Vec::new(),
    }
}

impl PgStore {
    pub async fn failing_now(&self) -> Result<Vec<FailingApp>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT f.tenant_id, f.app_id, f.since, f.failures, n.name,
                    (SELECT j.event FROM jobs j
                     WHERE j.tenant_id = f.tenant_id AND j.app_id = f.app_id AND j.kind = 'failure'
                     ORDER BY j.id DESC LIMIT 1)
                 FROM failing_apps f
                 LEFT JOIN app_names n ON n.tenant_id = f.tenant_id AND n.app_id = f.app_id
                 ORDER BY f.since, f.tenant_id, f.app_id",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| {
                let (name, code, message) = summary(r.get(5), r.get(4));
                FailingApp {
                    tenant_id: r.get(0),
                    app_id: r.get(1),
                    since: r.get(2),
                    failures: r.get(3),
                    app_name: name,
                    last_error_code: code,
                    last_error: message,
                }
            })
            .collect())
    }

    pub async fn alerts(
        &self,
        filter: &AlertFilter,
        limit: usize,
    ) -> Result<Vec<AlertRow>, StoreError> {
        let f = filter;
        let client = self.client().await?;
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j
             LEFT JOIN app_names n ON n.tenant_id = j.tenant_id AND n.app_id = j.app_id
             WHERE ($1::text IS NULL OR j.tenant_id = $1)
               AND ($2::text IS NULL OR j.app_id = $2 OR lower(n.name) = lower($2))
               AND (($3::text IS NULL AND $4::text IS NULL) OR EXISTS (
                    SELECT 1 FROM outbox o WHERE o.job_id = j.id
                      AND ($3::text IS NULL OR o.destination = $3) AND ($4::text IS NULL OR o.state = $4)))
             ORDER BY j.id DESC LIMIT $5"
        );
        let rows = client
            .query(
                &sql,
                &[
                    &f.tenant,
                    &f.app,
                    &f.destination,
                    &f.outcome,
                    &(limit.min(ALERTS_MAX) as i64),
                ],
            )
            .await
            .map_err(pg)?;
        let mut alerts: Vec<AlertRow> = rows.iter().map(alert).collect();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox o WHERE o.job_id = $1
               AND ($2::text IS NULL OR o.destination = $2) AND ($3::text IS NULL OR o.state = $3)
             ORDER BY o.destination, o.recipient"
        );
        let statement = client.prepare(&sql).await.map_err(pg)?;
        for a in &mut alerts {
            let rows = client
                .query(&statement, &[&a.id, &f.destination, &f.outcome])
                .await
                .map_err(pg)?;
            a.deliveries = rows.iter().map(|r| delivery(r, 0)).collect();
        }
        Ok(alerts)
    }

    pub async fn alert(&self, id: i64) -> Result<Option<AlertRow>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j
             LEFT JOIN app_names n ON n.tenant_id = j.tenant_id AND n.app_id = j.app_id
             WHERE j.id = $1"
        );
        let Some(row) = client.query_opt(&sql, &[&id]).await.map_err(pg)? else {
            return Ok(None);
        };
        let mut found = alert(&row);
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS}, o.payload FROM outbox o WHERE o.job_id = $1
             ORDER BY o.destination, o.recipient"
        );
        let rows = client.query(&sql, &[&id]).await.map_err(pg)?;
        found.deliveries = rows
            .iter()
            .map(|r| {
                let mut d = delivery(r, 0);
                d.payload = Some(r.get::<_, String>(10)).filter(|p| !p.is_empty());
                d
            })
            .collect();
        Ok(Some(found))
    }

    pub async fn dead_deliveries(&self, limit: usize) -> Result<Vec<(AlertRow, bool)>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {JOB_COLUMNS}, {DELIVERY_COLUMNS}, o.payload <> '' FROM outbox o
             JOIN jobs j ON j.id = o.job_id
             LEFT JOIN app_names n ON n.tenant_id = j.tenant_id AND n.app_id = j.app_id
             WHERE o.state = 'dead' ORDER BY o.updated_at DESC, o.id DESC LIMIT $1"
        );
        let rows = client
            .query(&sql, &[&(limit.min(ALERTS_MAX) as i64)])
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| {
                let mut a = alert(r);
                a.deliveries.push(delivery(r, 9));
                (a, r.get::<_, bool>(19))
            })
            .collect())
    }

    pub async fn last_delivered(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT destination, max(updated_at) FROM outbox WHERE state = 'delivered'
                 GROUP BY destination ORDER BY destination",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// See `Store::resend_dead`.
    pub async fn resend_dead(&self, id: i64) -> Result<Resend, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let found = tx
            .query_opt(
                "SELECT state, payload <> '', job_id, destination FROM outbox WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(pg)?;
        let Some(found) = found else {
            return Ok(Resend::Unknown);
        };
        let (state, sendable, job_id, destination): (String, bool, i64, String) =
            (found.get(0), found.get(1), found.get(2), found.get(3));
        if state != "dead" {
            return Ok(Resend::NotDead { state });
        }
        if !sendable {
            return Ok(Resend::NothingToSend);
        }
        let changed = tx
            .execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = $2, updated_at = $2,
                    detail = 'resent from the console', lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND state = 'dead'",
                &[&id, &now],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(if changed == 1 {
            Resend::Queued {
                job_id,
                destination,
            }
        } else {
            Resend::NotDead { state }
        })
    }
}
