//! Dead letters: payloads that could not be used, kept for inspection. Bounded three ways, so a
//! flood of junk cannot fill the disk between two history purges: each keeps at most
//! [`DEAD_LETTER_MAX_BYTES`] of its payload, and the table at most [`DEAD_LETTER_MAX_ROWS`] rows
//! and [`DEAD_LETTER_PAYLOAD_BUDGET`] bytes of payloads; the oldest go first.

use rusqlite::params;

use super::{Store, Written};

/// Dead letters keep at most this many bytes of the payload (the size is kept too).
pub const DEAD_LETTER_MAX_BYTES: usize = 64 * 1024;
/// The most dead letters kept.
pub const DEAD_LETTER_MAX_ROWS: i64 = 10_000;
/// The most payload bytes kept over all dead letters.
pub const DEAD_LETTER_PAYLOAD_BUDGET: i64 = 32 << 20;
/// The table is trimmed after this many new dead letters: it may pass its bounds by as many.
pub(super) const TRIM_EVERY: usize = 200;
/// Longest topic and decoder message kept (both are bounded at their source too).
const MAX_TEXT: usize = 1024;

pub(super) fn write(
    tx: &rusqlite::Connection,
    topic: &str,
    payload: &[u8],
    reason: &str,
    detail: &str,
    now: i64,
) -> rusqlite::Result<Written> {
    let kept = &payload[..payload.len().min(DEAD_LETTER_MAX_BYTES)];
    tx.prepare_cached(
        "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        now,
        cut(topic),
        kept,
        payload.len() as i64,
        reason,
        cut(detail)
    ])?;
    Ok(Written::DeadLetter)
}

/// At most [`MAX_TEXT`] bytes of `text`, cut at a character boundary.
pub(super) fn cut(text: &str) -> &str {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Store {
    /// Deletes the oldest dead letters beyond the row and byte bounds. A failure is logged and
    /// left for the next trim: the bounds are a guard, not a promise to any sender.
    pub(super) fn trim_dead_letters(&mut self) {
        let statements = [
            "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?1",
            "DELETE FROM dead_letters WHERE id IN (
                SELECT id FROM (
                    SELECT id, sum(length(payload)) OVER (ORDER BY id DESC) AS newer_bytes
                    FROM dead_letters)
                WHERE newer_bytes > ?1)",
        ];
        let bounds = [DEAD_LETTER_MAX_ROWS, DEAD_LETTER_PAYLOAD_BUDGET];
        let mut deleted = 0;
        for (statement, bound) in statements.into_iter().zip(bounds) {
            match self.conn.execute(statement, params![bound]) {
                Ok(n) => deleted += n,
                Err(error) => {
                    let error = self.sqlite(error);
                    tracing::warn!(%error, "cannot trim the dead letters; next time");
                    return;
                }
            }
        }
        if deleted > 0 {
            tracing::warn!(
                deleted,
                max_rows = DEAD_LETTER_MAX_ROWS,
                max_payload_bytes = DEAD_LETTER_PAYLOAD_BUDGET,
                "dead letters over their bounds; the oldest deleted"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record;

    fn junk(store: &mut Store, n: usize, bytes: usize) {
        let payload = vec![b'x'; bytes];
        let records: Vec<Record> = (0..n)
            .map(|_| Record::DeadLetter {
                topic: "qscloud/app/reload/t",
                payload: &payload,
                reason: "invalid_json",
                detail: "é".repeat(2000),
            })
            .collect();
        store.write(&records).unwrap();
    }

    fn count_and_bytes(store: &Store) -> (i64, i64) {
        store
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM dead_letters",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    #[test]
    fn rows_are_bounded_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(
            &dir.path().join("s.db"),
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        for _ in 0..60 {
            junk(&mut store, 200, 10);
        }
        let (rows, _) = count_and_bytes(&store);
        assert!(rows <= DEAD_LETTER_MAX_ROWS + TRIM_EVERY as i64, "{rows}");
        assert!(rows >= DEAD_LETTER_MAX_ROWS, "{rows}");
        let oldest: i64 = store
            .conn
            .query_row("SELECT min(id) FROM dead_letters", [], |r| r.get(0))
            .unwrap();
        assert!(oldest > 1, "the oldest were deleted");
    }

    #[test]
    fn payload_bytes_are_bounded_and_texts_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(
            &dir.path().join("s.db"),
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        // 1,000 payloads of 1 MiB: 64 KiB kept of each, 32 MiB in all at most (plus one trim's
        // worth of slack).
        for _ in 0..5 {
            junk(&mut store, 200, 1 << 20);
        }
        let (rows, bytes) = count_and_bytes(&store);
        let slack = TRIM_EVERY as i64 * DEAD_LETTER_MAX_BYTES as i64;
        assert!(bytes <= DEAD_LETTER_PAYLOAD_BUDGET + slack, "{bytes}");
        assert!(rows < 1000, "{rows}");
        let detail: String = store
            .conn
            .query_row("SELECT detail FROM dead_letters LIMIT 1", [], |r| r.get(0))
            .unwrap();
        assert!(
            detail.len() <= MAX_TEXT && detail.len() >= MAX_TEXT - 1,
            "{}",
            detail.len()
        );
    }
}
