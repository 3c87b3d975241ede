//! The label values of every labelled metric, as enums: a value that is not listed cannot be
//! counted (it does not compile), and every listed value is shown from the start, at zero.

/// A label whose values are the variants of an enum, in exposition order.
pub trait Label: Copy + 'static {
    /// The label's name in the exposition (`reason`, `outcome`, ...).
    const NAME: &'static str;
    /// Every value, in declaration order (`ALL[v.index()] == v`).
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn index(self) -> usize;
}

/// Declares a label enum: its variants with their exposition text, and the label's name.
macro_rules! label {
    (
        $(#[$meta:meta])*
        $name:ident($label:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl Label for $name {
            const NAME: &'static str = $label;
            const ALL: &'static [Self] = &[$(Self::$variant,)+];

            fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            fn index(self) -> usize {
                self as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

label! {
    /// Why a decoded event needs no alert, for `events_dropped_total{reason}`.
    DropReason("reason") {
        UnmonitoredTenant => "unmonitored_tenant",
        Succeeded => "reload_succeeded",
        NotInAlertOn => "not_in_alert_on",
        SessionApp => "session_app",
        /// An event type the daemon does not alert on (the gateway publishes every signed one).
        UnknownEventType => "unknown_event_type",
        /// A value it does not know, e.g. the placeholder `"status": "string"` of Qlik's
        /// published examples.
        UnknownValue => "unknown_value",
        /// A test run of an automation from the editor (`include_automation_test_runs`).
        AutomationTestRun => "automation_test_run",
    }
}

label! {
    /// Why a payload ends in the dead-letter table, for `dead_letters_total{reason}` and the
    /// table's `reason` column.
    DeadLetterReason("reason") {
        InvalidJson => "invalid_json",
        NotAnObject => "not_an_object",
        MissingField => "missing_field",
        WrongType => "wrong_type",
    }
}

label! {
    /// The outcome of one Qlik Cloud REST request, for `qlik_requests_total{outcome}`.
    QlikOutcome("outcome") {
        Ok => "ok",
        NotFound => "not_found",
        Unauthorized => "unauthorized",
        RateLimited => "rate_limited",
        ServerError => "server_error",
        ClientError => "client_error",
        Timeout => "timeout",
        NetworkError => "network_error",
    }
}

label! {
    /// Which Qlik Cloud REST endpoint a request went to, for
    /// `qlik_endpoint_requests_total{endpoint,outcome}`.
    QlikEndpoint("endpoint") {
        Reload => "reload",
        Reloads => "reloads",
        App => "app",
        Item => "item",
        User => "user",
        Space => "space",
        ScriptLog => "script_log",
        Other => "other",
    }
}

label! {
    /// An enrichment look-up, for `enrich_failures_total{lookup}`.
    Lookup("lookup") {
        Reload => "reload",
        App => "app",
        Item => "item",
        Owner => "owner",
        User => "user",
        Space => "space",
        ScriptLog => "script_log",
        Automation => "automation",
    }
}

label! {
    /// What became of an alert at one destination, for `alerts_total{destination,outcome}`.
    AlertOutcome("outcome") {
        Delivered => "delivered",
        /// One failed attempt that will be retried.
        Retried => "retried",
        Dead => "dead",
        Suppressed => "suppressed",
        Silenced => "silenced",
        /// Listed in a storm digest instead of sent on its own.
        Digested => "digested",
    }
}

label! {
    /// The answer to one gateway request, for `gateway_requests_total{outcome}`.
    GatewayOutcome("outcome") {
        Accepted => "accepted",
        Unauthorized => "unauthorized",
        BadRequest => "bad_request",
        Forbidden => "forbidden",
        TooLarge => "too_large",
        UnsupportedMediaType => "unsupported_media_type",
        Unavailable => "unavailable",
        Busy => "busy",
        Timeout => "timeout",
        MethodNotAllowed => "method_not_allowed",
        NotFound => "not_found",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consistent<L: Label + std::fmt::Debug + PartialEq>() {
        for (i, value) in L::ALL.iter().enumerate() {
            assert_eq!(value.index(), i, "{value:?}");
            assert!(
                value
                    .as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{value:?}"
            );
        }
        let mut texts: Vec<&str> = L::ALL.iter().map(|v| v.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), L::ALL.len(), "label texts are unique");
    }

    #[test]
    fn every_label_lists_each_value_once_at_its_index() {
        consistent::<DropReason>();
        consistent::<DeadLetterReason>();
        consistent::<QlikOutcome>();
        consistent::<Lookup>();
        consistent::<QlikEndpoint>();
        consistent::<AlertOutcome>();
        consistent::<GatewayOutcome>();
    }
}
