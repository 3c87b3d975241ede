//! `delivery.dry_run_dir`: each payload is written as a file instead of sent. Email becomes a
//! real RFC 5322 `.eml` (the very message the SMTP path would send), Slack and Teams pretty JSON,
//! a webhook its body (`.json` pretty, or `.txt`) with its `vars` shown as `<vars.NAME>`.

use std::path::{Path, PathBuf};

use lettre::message::Mailbox;

use super::email::{build_message, Parts};
use super::{wrong_kind, NotifyError, Payload, Receipt, SendError, SendMeta};
use crate::config::{DestinationConfig, DestinationKind, Priority};

/// Each part of a file name is cut to this many characters: stamp, four parts, extension and
/// the temp file's suffix then stay under the usual 255-byte limit on a name.
const PART_CHARS: usize = 48;

#[derive(Debug)]
pub struct FileNotifier {
    dir: PathBuf,
    /// The destination's type; a payload of another kind is refused, as the real sender would.
    kind: &'static str,
    /// For email destinations: the headers the SMTP path would set.
    email: Option<(Mailbox, Priority)>,
}

impl FileNotifier {
    pub fn new(d: &DestinationConfig, dir: &Path) -> Result<FileNotifier, NotifyError> {
        let (kind, email) = match &d.kind {
            DestinationKind::Email(e) => ("email", Some((e.from.clone(), e.priority))),
            DestinationKind::Slack(_) => ("slack", None),
            DestinationKind::Teams(_) => ("teams", None),
            DestinationKind::Webhook(_) => ("webhook", None),
        };
        Ok(FileNotifier {
            dir: dir.to_owned(),
            kind,
            email,
        })
    }

    pub async fn send(&self, payload: &Payload, meta: &SendMeta<'_>) -> Result<Receipt, SendError> {
        if payload.kind() != self.kind {
            return Err(wrong_kind(payload, self.kind));
        }
        let (bytes, recipient, ext) = match (payload, &self.email) {
            (
                Payload::Email {
                    to,
                    subject,
                    html,
                    text,
                },
                Some((from, priority)),
            ) => {
                let message =
                    build_message(from, *priority, to, subject, text, html, Parts::EightBit)?;
                (message.formatted(), Some(to.as_str()), "eml")
            }
            (Payload::Slack { body } | Payload::Teams { body }, _) => {
                let mut bytes = serde_json::to_vec_pretty(body)
                    .map_err(|e| SendError::permanent(format!("payload is not JSON: {e}")))?;
                bytes.push(b'\n');
                (bytes, None, "json")
            }
            // Its `vars` shown by name: a file must not hold secrets.
            (Payload::Webhook { body }, _) => {
                let json = serde_json::from_str::<serde_json::Value>(body).is_ok();
                let mut bytes = crate::render::vars::shown(body).into_bytes();
                bytes.push(b'\n');
                (bytes, None, if json { "json" } else { "txt" })
            }
            (Payload::Email { .. }, None) => return Err(wrong_kind(payload, self.kind)),
        };
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string();
        let name = file_name(&stamp, meta, recipient, ext);
        let dir = self.dir.clone();
        let job = meta.job_id;
        // std::fs on a blocking thread: the runtime's workers keep serving other sends.
        tokio::task::spawn_blocking(move || write_atomically(&dir, &name, job, &bytes))
            .await
            .map_err(|e| SendError::transient(format!("file writer stopped: {e}")))?
            .map(|path| Receipt {
                detail: format!("wrote {}", path.display()),
            })
    }
}

/// `<stamp>_<destination>_<appId>_<reloadId>[_<recipient>].<ext>`, every part sanitised: the
/// values come from outside and must not climb out of the directory or break the name.
fn file_name(stamp: &str, meta: &SendMeta<'_>, recipient: Option<&str>, ext: &str) -> String {
    let mut parts = vec![stamp, meta.destination, meta.app_id, meta.reload_id];
    parts.extend(recipient);
    let parts: Vec<String> = parts.into_iter().map(sanitise).collect();
    format!("{}.{ext}", parts.join("_"))
}

fn sanitise(part: &str) -> String {
    part.chars()
        .take(PART_CHARS)
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '@' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// Temp file and rename, so a reader of the directory never sees half a file.
fn write_atomically(dir: &Path, name: &str, job: i64, bytes: &[u8]) -> Result<PathBuf, SendError> {
    let failed = |what: &str, path: &Path, e: std::io::Error| {
        SendError::transient(format!("{what} {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| failed("cannot create", dir, e))?;
    let temp = dir.join(format!(".{name}.{job}.tmp"));
    let path = dir.join(name);
    std::fs::write(&temp, bytes).map_err(|e| failed("cannot write", &temp, e))?;
    std::fs::rename(&temp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        failed("cannot rename to", &path, e)
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_only_safe_characters() {
        let meta = SendMeta {
            destination: "ops email",
            app_id: "../../x",
            reload_id: "r/1\\2",
            job_id: 1,
        };
        let name = file_name("20250101T000000", &meta, Some("Ops <ops@acme.com>"), "eml");
        assert_eq!(
            name,
            "20250101T000000_ops_email_.._.._x_r_1_2_Ops__ops@acme.com_.eml"
        );
        let long = "a".repeat(1000);
        let meta = SendMeta {
            destination: &long,
            app_id: &long,
            reload_id: &long,
            job_id: i64::MAX,
        };
        let name = file_name("20250101T000000", &meta, Some(&long), "json");
        assert!(format!(".{name}.{}.tmp", i64::MAX).len() <= 255);
    }
}
