//! The Operator Connect numbers of an OC enterprise's license page (issue 32): what the
//! operator uploaded, each number's assignment and activation, so an admin sees why a user
//! counts under Operator Connect or not; and the inventory's operations, the same as
//! `teamsgw oc-number` and `/api/v1/oc-numbers` through [`crate::operations::oc_numbers`]:
//! add, assign, unassign, release, import (pasted `Get-CsPhoneNumberAssignment` output, with
//! a dry run) and export. A range is one row; at most [`SHOWN`] rows are shown, with the total.

use axum::Extension;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use teamsgw_store::{Assignment, NumberSource, OcNumber, ProvisionError};

use super::super::layout::{csrf_field, frame, notice};
use super::super::session::Session;
use super::super::{ConsoleState, api_failure, csrf_refusal, html_response, license_href};
use crate::admin::api::{changed, with_ops};
use crate::operations::oc_numbers::{ImportSummary, OcNumberAdd, OcNumberAssign, export_csv};
use crate::operations::{Provisioner, user_import};

/// Rows shown; an inventory of thousands of single numbers is not read on a page.
const SHOWN: usize = 200;

/// The section: the numbers, each with its actions, then the forms.
pub fn section(numbers: &[OcNumber], href: &str, s: &Session) -> Markup {
    html! {
        h2 #oc-numbers-title { "Operator Connect numbers" }
        p.muted #oc-numbers-total {
            (numbers.len()) " numbers and ranges"
            @if numbers.len() > SHOWN { ", the first " (SHOWN) " shown (teamsgw oc-number list for all)" }
            " · " a href={ (href) "/oc-numbers.csv" } download { "Export (CSV)" }
        }
        div.scroll { table #oc-numbers {
            thead { tr {
                th { "Number" } th { "Assignment" } th { "User" } th { "Activation" }
                th { "Country" } th { "Acquired" } th { "Source" } th { "Actions" }
            } }
            tbody {
                @for n in numbers.iter().take(SHOWN) {
                    tr data-number=(n.first) {
                        td { (n.first) @if n.last != n.first { "–" (n.last) } }
                        td.assignment { (n.assignment.as_str()) }
                        td { @match &n.user { Some(u) => (u), None => span.muted { "none" } } }
                        td { (n.activation.as_str()) }
                        td { (n.country.as_deref().unwrap_or("")) }
                        td { (n.acquired_on) }
                        td { (n.source.as_str()) }
                        td {
                            @if n.assignment != Assignment::Unassigned {
                                (action(href, "unassign", &n.first, "Unassign", s))
                            }
                            (action(href, "release", &n.first, "Release", s))
                        }
                    }
                }
                @if numbers.is_empty() { tr { td colspan="8" .muted { "No Operator Connect number yet." } } }
            }
        } }
        form.inline #oc-add method="post" action={ (href) "/oc-numbers/add" } {
            (csrf_field(s))
            label { "Number or range" input type="text" name="number" placeholder="+14255550100[-+14255550199]" required; }
            (assignment_fields())
            button type="submit" { "Add number" }
        }
        form.inline #oc-assign method="post" action={ (href) "/oc-numbers/assign" } {
            (csrf_field(s))
            label { "Number" input type="text" name="number" placeholder="+14255550100" required; }
            (assignment_fields())
            button type="submit" { "Assign" }
        }
        form #oc-import method="post" action={ (href) "/oc-numbers/import" } {
            (csrf_field(s))
            label { "Get-CsPhoneNumberAssignment output (CSV or JSON)"
                textarea name="rows" rows="4" cols="80" required {} }
            label { input type="checkbox" name="dry_run" value="on" checked; " Dry run" }
            button type="submit" { "Import" }
        }
    }
}

/// The user, assignment and activation fields of the add and assign forms.
fn assignment_fields() -> Markup {
    html! {
        label { "User (UPN)" input type="text" name="user" placeholder="UserAssigned to this user"; }
        label { "Assignment"
            select name="assignment" {
                option value="" selected { "(from the user)" }
                @for a in Assignment::ALL { option value=(a.as_str()) { (a.as_str()) } }
            }
        }
        label { "Activation"
            select name="activation" {
                option value="" selected { "(unchanged / Activated)" }
                @for a in teamsgw_store::Activation::ALL { option value=(a.as_str()) { (a.as_str()) } }
            }
        }
    }
}

/// A one-button form for `what` on `number`.
fn action(href: &str, what: &str, number: &str, label: &str, s: &Session) -> Markup {
    html! {
        form.inline method="post" action={ (href) "/oc-numbers/" (what) } {
            (csrf_field(s))
            input type="hidden" name="number" value=(number);
            button type="submit" { (label) }
        }
    }
}

#[derive(Deserialize)]
pub struct NumberForm {
    #[serde(default)]
    csrf: String,
    number: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    assignment: String,
    #[serde(default)]
    activation: String,
}

/// A form's text field: blank is absent.
fn given(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// Refuses a number that is not one of `enterprise`'s (the page acts on its own numbers).
async fn own_number(
    ops: &Provisioner<'_>,
    enterprise: &str,
    number: &str,
) -> Result<(), ProvisionError> {
    let list = ops.store.list_oc_numbers(enterprise).await?;
    let len = number.len();
    let held = list
        .iter()
        .any(|n| n.first.len() == len && n.first.as_str() <= number && number <= n.last.as_str());
    if held {
        Ok(())
    } else {
        Err(ProvisionError::NotFound {
            field: "number",
            what: "OC number of this enterprise",
            value: number.to_owned(),
        })
    }
}

/// Runs `op` for the page of `name` when `csrf` is the session's, and goes back to the page
/// saying `done`, or shows the refusal.
async fn act<T>(
    c: &ConsoleState,
    s: &Session,
    csrf: &str,
    name: &str,
    done: &str,
    op: impl AsyncFnOnce(&Provisioner<'_>) -> Result<T, ProvisionError>,
) -> Response {
    if let Some(r) = csrf_refusal(c, s, csrf) {
        return r;
    }
    let result = with_ops(&c.api, async |ops| {
        op(ops).await?;
        Ok(ops.store.clone())
    })
    .await;
    match result {
        Ok(store) => {
            changed(&c.api, Some(&store)).await;
            tracing::info!(enterprise = %name, action = done, "console: OC numbers changed");
            Redirect::to(&format!(
                "{}?done={done}#oc-numbers-title",
                license_href(name)
            ))
            .into_response()
        }
        Err(e) => api_failure(&e, s),
    }
}

pub async fn add(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(f): Form<NumberForm>,
) -> Response {
    let req = OcNumberAdd {
        enterprise: name.clone(),
        number: f.number.trim().to_owned(),
        assignment: given(&f.assignment),
        user: given(&f.user),
        activation: given(&f.activation),
        country: None,
        city: None,
        calling_profile: None,
        emergency_address: None,
        acquired_on: None,
    };
    act(&c, &s, &f.csrf, &name, "oc-added", async |ops| {
        ops.add_oc_numbers(&req, NumberSource::Api).await
    })
    .await
}

pub async fn assign(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(f): Form<NumberForm>,
) -> Response {
    let number = f.number.trim().to_owned();
    let req = OcNumberAssign {
        assignment: given(&f.assignment),
        user: given(&f.user),
        activation: given(&f.activation),
    };
    act(&c, &s, &f.csrf, &name, "oc-assigned", async |ops| {
        own_number(ops, &name, &number).await?;
        ops.assign_oc_number(&number, &req).await
    })
    .await
}

pub async fn unassign(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(f): Form<NumberForm>,
) -> Response {
    let number = f.number.trim().to_owned();
    act(&c, &s, &f.csrf, &name, "oc-unassigned", async |ops| {
        own_number(ops, &name, &number).await?;
        ops.unassign_oc_number(&number).await
    })
    .await
}

pub async fn release(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(f): Form<NumberForm>,
) -> Response {
    let number = f.number.trim().to_owned();
    act(&c, &s, &f.csrf, &name, "oc-released", async |ops| {
        own_number(ops, &name, &number).await?;
        ops.release_oc_numbers(&number).await
    })
    .await
}

#[derive(Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    csrf: String,
    rows: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    dry_run: Option<String>,
}

/// An import of pasted rows: a page with what it did (or would do) and each refused row.
pub async fn import(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(f): Form<ImportForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&c, &s, &f.csrf) {
        return r;
    }
    let dry_run = f.dry_run.is_some();
    let result = with_ops(&c.api, async |ops| {
        let rows = user_import::parse(&f.rows)?;
        let summary = ops.import_oc_numbers(&name, &rows, dry_run).await?;
        Ok((summary, ops.store.clone()))
    })
    .await;
    match result {
        Ok((summary, store)) => {
            if !dry_run {
                changed(&c.api, Some(&store)).await;
            }
            html_response(StatusCode::OK, imported(&name, &summary, &s))
        }
        Err(e) => api_failure(&e, &s),
    }
}

fn imported(name: &str, r: &ImportSummary, s: &Session) -> Markup {
    let verb = if r.dry_run { "would add" } else { "added" };
    let body = html! {
        (notice(if r.refused.is_empty() { "info" } else { "warning" }, &format!(
            "{} rows: {verb} {}, updated {}, unchanged {}, refused {}{}",
            r.rows, r.added, r.updated, r.unchanged, r.refused.len(),
            if r.dry_run { " (dry run: nothing written)" } else { "" }
        )))
        @if !r.refused.is_empty() {
            table #oc-refused {
                thead { tr { th.num { "Line" } th { "Reason" } } }
                tbody { @for row in &r.refused { tr { td.num { (row.line) } td { (row.reason) } } } }
            }
        }
        p { a href={ (license_href(name)) "#oc-numbers-title" } { "Back to " (name) } }
    };
    frame(&format!("Import · {name}"), Some(s), body)
}

/// The enterprise's numbers as `Get-CsPhoneNumberAssignment` CSV, which the import reads back.
pub async fn export(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let text = with_ops(&c.api, async |ops| {
        export_csv(&ops.store.list_oc_numbers(&name).await?)
    })
    .await;
    match text {
        Ok(text) => {
            let file: String = name
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                .collect();
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{file}-oc-numbers.csv\""),
                    ),
                ],
                text,
            )
                .into_response()
        }
        Err(e) => api_failure(&e, &s),
    }
}
