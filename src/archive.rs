//! The script log archive (design §3 `script_log_archive`): the full log of each failed reload
//! kept on disk as `<dir>/<YYYY-MM-DD>/<HHMMSS>_appId=<id>_reloadId=<id>.log`, dated in UTC.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::qlik::event::ReloadEvent;

/// Longest id kept in a file name; file names stop at 255 bytes.
const ID_MAX: usize = 64;

/// Writes `log` for `event` under `dir` and returns the file's path. Dated by the reload's end
/// time, else the event's time, else now. The file appears whole or not at all: it is written
/// to a temporary name beside it and renamed. A second log for the same reload replaces the
/// first.
pub fn archive_script_log(dir: &Path, event: &ReloadEvent, log: &str) -> io::Result<PathBuf> {
    let when = event.end_time.or(event.event_time).unwrap_or_else(Utc::now);
    let day_dir = dir.join(when.format("%Y-%m-%d").to_string());
    fs::create_dir_all(&day_dir)?;
    let path = day_dir.join(file_name(when, event));
    let temp = day_dir.join(format!(
        ".{}.{:016x}.tmp",
        file_name(when, event),
        rand::rng().random::<u64>()
    ));
    let written = write_synced(&temp, log.as_bytes()).and_then(|()| fs::rename(&temp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(path)
}

fn file_name(when: DateTime<Utc>, event: &ReloadEvent) -> String {
    format!(
        "{}_appId={}_reloadId={}.log",
        when.format("%H%M%S"),
        sanitise(&event.app_id),
        sanitise(&event.reload_id)
    )
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Ids come from outside: anything but `[A-Za-z0-9_-]` becomes `_`, so no id can add a
/// directory level, climb out with `..`, or hide a file with a leading dot.
fn sanitise(id: &str) -> String {
    let clean: String = id
        .chars()
        .take(ID_MAX)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "_".to_owned()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(app_id: &str, reload_id: &str) -> ReloadEvent {
        let payload = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/events/app-reload-finished-error.json"
        ))
        .unwrap();
        let mut event = crate::qlik::event::decode(&payload).unwrap();
        event.app_id = app_id.to_owned();
        event.reload_id = reload_id.to_owned();
        event
    }

    #[test]
    fn lays_out_day_directory_time_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let event = event(
            "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43",
            "67d3c8f1a2b4c5d6e7f80912",
        );
        let path = archive_script_log(dir.path(), &event, "line 1\r\nline 2\r\n").unwrap();
        assert_eq!(
            path,
            dir.path().join("2025-03-14").join(
                "061240_appId=8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43_reloadId=67d3c8f1a2b4c5d6e7f80912.log"
            )
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "line 1\r\nline 2\r\n"
        );
        // Only the log itself is left: no temporary file beside it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn falls_back_to_the_event_time_then_now() {
        let dir = tempfile::tempdir().unwrap();
        let mut event = event("a", "r");
        event.end_time = None;
        event.event_time = "2024-12-31T23:59:58Z".parse().ok();
        let path = archive_script_log(dir.path(), &event, "x").unwrap();
        assert!(path.ends_with("2024-12-31/235958_appId=a_reloadId=r.log"));
        event.event_time = None;
        let path = archive_script_log(dir.path(), &event, "x").unwrap();
        let today = Utc::now().format("%Y-%m-%d").to_string();
        // Written just now: today's directory, unless midnight passed in between.
        let day = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(day == today || day < today.as_str(), "{day}");
    }

    #[test]
    fn hostile_ids_stay_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let event = event("../../etc/passwd", "..");
        let path = archive_script_log(dir.path(), &event, "x").unwrap();
        assert_eq!(
            path,
            dir.path()
                .join("2025-03-14")
                .join("061240_appId=______etc_passwd_reloadId=__.log")
        );
        assert!(path.starts_with(dir.path()));
    }

    #[test]
    fn sanitising_keeps_safe_ids_and_bounds_the_rest() {
        assert_eq!(sanitise("abc-DEF_123"), "abc-DEF_123");
        assert_eq!(sanitise("a/b\\c.d e\u{e9}\0"), "a_b_c_d_e__");
        assert_eq!(sanitise(""), "_");
        assert_eq!(sanitise(&"x".repeat(500)).len(), ID_MAX);
    }

    #[test]
    fn rewriting_the_same_reload_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let event = event("a", "r");
        archive_script_log(dir.path(), &event, "first").unwrap();
        let path = archive_script_log(dir.path(), &event, "second").unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "second");
    }
}
