//! The Operator Connect numbers of an OC enterprise's license page (issue 32): what the
//! operator uploaded, each number's assignment and activation, so an admin sees why a user
//! counts under Operator Connect or not. A range is one row; at most [`SHOWN`] rows are shown,
//! with the total, and `teamsgw oc-number list` or the API give the rest.

use maud::{Markup, html};
use teamsgw_store::OcNumber;

/// Rows shown; an inventory of thousands of single numbers is not read on a page.
const SHOWN: usize = 200;

pub fn section(numbers: &[OcNumber]) -> Markup {
    html! {
        h2 #oc-numbers-title { "Operator Connect numbers" }
        p.muted #oc-numbers-total {
            (numbers.len()) " numbers and ranges"
            @if numbers.len() > SHOWN { ", the first " (SHOWN) " shown (teamsgw oc-number list for all)" }
        }
        div.scroll { table #oc-numbers {
            thead { tr {
                th { "Number" } th { "Assignment" } th { "User" } th { "Activation" }
                th { "Country" } th { "Acquired" } th { "Source" }
            } }
            tbody {
                @for n in numbers.iter().take(SHOWN) {
                    tr data-number=(n.first) {
                        td { (n.first) @if n.last != n.first { "–" (n.last) } }
                        td { (n.assignment.as_str()) }
                        td { @match &n.user { Some(u) => (u), None => span.muted { "none" } } }
                        td { (n.activation.as_str()) }
                        td { (n.country.as_deref().unwrap_or("")) }
                        td { (n.acquired_on) }
                        td { (n.source.as_str()) }
                    }
                }
                @if numbers.is_empty() { tr { td colspan="7" .muted { "No Operator Connect number yet." } } }
            }
        } }
    }
}
