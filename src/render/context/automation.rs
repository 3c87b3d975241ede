//! The fields of an automation alert (design §9.1): a Qlik Automate run that failed. They are
//! present (empty) in a reload alert's context too, so a template never meets a missing key.

use serde::Serialize;

use super::{AlertInput, StartTimes, StopTimes, Times};
use crate::qlik::event::EventKind;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomationFields {
    pub automation_id: Option<String>,
    /// The API's name, else the event's `data.title`, else `automation <id>`.
    pub automation_name: Option<String>,
    /// `<tenant url>/automations/<id>/editor`.
    pub automation_url: Option<String>,
    pub automation_description: Option<String>,
    /// `manual`, `scheduled`, `triggered`, `webhook` (from the API).
    pub automation_run_mode: Option<String>,
    pub automation_owner_id: Option<String>,
    pub automation_owner_name: Option<String>,
    pub run_id: Option<String>,
    /// As Qlik sent it: `failed`, `exceeded limit`.
    pub run_status: Option<String>,
    /// What started the run: `detail`, `api_sync`, `api_async`, `webhook`, `lookup`, ...
    pub run_context: Option<String>,
    /// `runStartTime.{startTimeUTC,startTimeLocal1..5}`, as `executionStartTime`.
    pub run_start_time: StartTimes,
    /// `runStopTime.{stopTimeUTC,stopTimeLocal1..5}`.
    pub run_stop_time: StopTimes,
    pub executed_by_id: Option<String>,
    pub executed_by_name: Option<String>,
}

impl AutomationFields {
    /// Empty for a reload alert.
    pub fn of(input: &AlertInput, name: &str, tenant_url: Option<&str>) -> Self {
        let (e, x) = (input.event, input.enrichment);
        if e.kind != EventKind::AutomationRun {
            return Self::default();
        }
        let api = x.automation.as_ref();
        let owner = x.owner.as_ref();
        Self {
            automation_id: Some(e.app_id.clone()),
            automation_name: Some(name.to_owned()),
            automation_url: automation_url(tenant_url, &e.app_id),
            automation_description: api.and_then(|a| a.description.clone()),
            automation_run_mode: api.and_then(|a| a.run_mode.clone()),
            automation_owner_id: e.owner_id.clone().or(api.and_then(|a| a.owner_id.clone())),
            automation_owner_name: owner.and_then(|o| o.name.clone()),
            run_id: Some(e.reload_id.clone()),
            run_status: Some(e.status_text.clone()),
            run_context: e.trigger.clone(),
            run_start_time: StartTimes(Times::of(e.start_time, input.timezone)),
            run_stop_time: StopTimes(Times::of(e.end_time, input.timezone)),
            executed_by_id: e.user_id.clone(),
            executed_by_name: x.user.as_ref().and_then(|u| u.name.clone()).or_else(|| {
                match (&e.user_id, owner) {
                    (Some(user), Some(o)) if *user == o.id => o.name.clone(),
                    _ => None,
                }
            }),
        }
    }
}

/// Where an automation opens in the tenant (Qlik Automate's editor).
pub fn automation_url(tenant_url: Option<&str>, id: &str) -> Option<String> {
    tenant_url.map(|base| format!("{base}/automations/{id}/editor"))
}
