//! Words of the domain that more than one part of the program speaks: the kinds of failure that
//! raise an alert, the [`keyword!`](crate::keyword) enums configuration is written in, and
//! durations as the store's milliseconds.
//!
//! It depends on nothing in the crate, so `config` and `qlik` can both use it without either
//! importing the other.

use std::time::Duration;

/// `d` in whole milliseconds as the store keeps times, saturating at `i64::MAX` instead of
/// wrapping negative (`as i64` on 300000000 years would make a retention purge everything).
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An enum spelt in configuration as one of a fixed set of words.
pub trait Keyword: Sized + Copy + 'static {
    /// Every accepted word, in declaration order (error messages list them).
    const WORDS: &'static [&'static str];
    /// The word for this value.
    fn as_str(self) -> &'static str;
    /// The value for `word`, exactly as spelt.
    fn from_word(word: &str) -> Option<Self>;
}

/// Declares an enum of unit variants, each spelt as a word, implementing [`Keyword`].
/// `config` reads any [`Keyword`] from YAML with the list of accepted words in its error.
#[macro_export]
macro_rules! keyword {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $crate::domain::Keyword for $name {
            const WORDS: &'static [&'static str] = &[$($word),+];

            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $word),+ }
            }

            fn from_word(word: &str) -> Option<Self> {
                match word {
                    $($word => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl $name {
            /// The word for this value (callers need not import [`Keyword`]).
            pub fn as_str(self) -> &'static str {
                <Self as $crate::domain::Keyword>::as_str(self)
            }
        }
    };
}

keyword! {
    /// A kind of failure that can raise an alert; `alert_on` lists the ones that do.
    pub enum Failure {
        /// `reload.finished` with status FAILED.
        ReloadFailed = "reload_failed",
        /// `reload.finished` with status EXCEEDED_LIMIT.
        ReloadExceededLimit = "reload_exceeded_limit",
        /// `reload.finished` with status CANCELED.
        ReloadCanceled = "reload_canceled",
        /// `app.reload.finished` (one engine attempt) with status error.
        EngineAttemptFailed = "engine_attempt_failed",
        /// `automation.run.ended` (Qlik Automate) with status `failed`.
        AutomationFailed = "automation_failed",
        /// `automation.run.ended` with status `exceeded limit`.
        AutomationExceededLimit = "automation_exceeded_limit",
    }
}

impl Failure {
    /// What failed: a reload of an app, or a run of an automation.
    pub fn kind(self) -> AlertKind {
        match self {
            Self::AutomationFailed | Self::AutomationExceededLimit => AlertKind::Automation,
            Self::ReloadFailed
            | Self::ReloadExceededLimit
            | Self::ReloadCanceled
            | Self::EngineAttemptFailed => AlertKind::Reload,
        }
    }
}

keyword! {
    /// What an alert is about; templates see it as `alertKind`, routing and silences can match
    /// on it (`kind: automation`).
    pub enum AlertKind {
        /// An app's reload failed (`reload.finished`, `app.reload.finished`).
        Reload = "reload",
        /// A Qlik Automate run failed (`automation.run.ended`).
        Automation = "automation",
    }
}

impl Failure {
    /// The Qlik Cloud event type that brings this kind of failure (what a webhook must send).
    pub fn event_type(self) -> &'static str {
        match self {
            Self::ReloadFailed | Self::ReloadExceededLimit | Self::ReloadCanceled => {
                "com.qlik.v1.reload.finished"
            }
            Self::EngineAttemptFailed => "com.qlik.v1.app.reload.finished",
            Self::AutomationFailed | Self::AutomationExceededLimit => {
                "com.qlik.v1.automation.run.ended"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_saturate() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::from_secs(u64::MAX)), i64::MAX);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }

    #[test]
    fn words_round_trip() {
        for word in Failure::WORDS {
            let failure = Failure::from_word(word).expect("declared word");
            assert_eq!(failure.as_str(), *word);
        }
        assert_eq!(Failure::from_word("reload_fialed"), None);
        assert_eq!(Failure::AutomationFailed.kind(), AlertKind::Automation);
        assert_eq!(Failure::ReloadCanceled.kind().as_str(), "reload");
    }
}
