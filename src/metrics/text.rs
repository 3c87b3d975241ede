//! The Prometheus text exposition format, one metric family at a time.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Histogram, Label, LabelledCounter};

/// Escapes a Prometheus label value.
pub(super) fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    let _ = writeln!(
        out,
        "# HELP reload_butler_{name} {help}\n# TYPE reload_butler_{name} counter\nreload_butler_{name} {}",
        value.load(Ordering::Relaxed)
    );
}

pub(super) fn labelled<L: Label>(out: &mut String, name: &str, help: &str, c: &LabelledCounter<L>) {
    let _ = writeln!(
        out,
        "# HELP reload_butler_{name} {help}\n# TYPE reload_butler_{name} counter"
    );
    for value in L::ALL {
        let _ = writeln!(
            out,
            "reload_butler_{name}{{{}=\"{}\"}} {}",
            L::NAME,
            value.as_str(),
            c.get(*value)
        );
    }
}

pub(super) fn gauge(out: &mut String, name: &str, help: &str, value: &AtomicBool) {
    let _ = writeln!(
        out,
        "# HELP reload_butler_{name} {help}\n# TYPE reload_butler_{name} gauge\nreload_butler_{name} {}",
        u8::from(value.load(Ordering::Relaxed))
    );
}

pub(super) fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(
        out,
        "# HELP reload_butler_{name} {help}\n# TYPE reload_butler_{name} histogram"
    );
    for (bound, bucket) in h.bounds.iter().zip(&h.buckets) {
        let _ = writeln!(
            out,
            "reload_butler_{name}_bucket{{le=\"{bound}\"}} {}",
            bucket.load(Ordering::Relaxed)
        );
    }
    let count = h.count.load(Ordering::Relaxed);
    let _ = writeln!(out, "reload_butler_{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(
        out,
        "reload_butler_{name}_sum {}\nreload_butler_{name}_count {count}",
        h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
}
