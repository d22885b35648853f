//! SVG charts drawn on the server: no script, and the CSP allows no other kind.

use maud::{Markup, html};

use crate::operations::license_report::AuditDay;

const W: f64 = 640.0;
const H: f64 = 220.0;
const PAD: f64 = 36.0;

/// Currently licensed against acquired, one point per audit day.
pub fn history_chart(days: &[AuditDay]) -> Markup {
    let top = days
        .iter()
        .map(|d| d.report.acquired.max(d.report.currently_licensed))
        .max()
        .unwrap_or(0)
        .max(1);
    let x = |i: usize| {
        if days.len() < 2 {
            W / 2.0
        } else {
            PAD + (W - 2.0 * PAD) * i as f64 / (days.len() - 1) as f64
        }
    };
    let y = |v: u32| H - PAD - (H - 2.0 * PAD) * f64::from(v) / f64::from(top);
    let line = |value: fn(&AuditDay) -> u32| -> String {
        days.iter()
            .enumerate()
            .map(|(i, d)| format!("{:.1},{:.1}", x(i), y(value(d))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let licensed = line(|d| d.report.currently_licensed);
    let acquired = line(|d| d.report.acquired);
    html! {
        svg.chart #audit-chart xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) } role="img"
            aria-label="Currently licensed against acquired licenses per day" {
            title { "Currently licensed against acquired" }
            line x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) stroke="#b8c1cc" {}
            line x1=(PAD) y1=(PAD) x2=(PAD) y2=(H - PAD) stroke="#b8c1cc" {}
            text x="4" y=(PAD + 4.0) font-size="11" fill="#566173" { (top) }
            text x="4" y=(H - PAD) font-size="11" fill="#566173" { "0" }
            @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                text x=(PAD) y=(H - 12.0) font-size="11" fill="#566173" { (first.day) }
                text x=(W - PAD) y=(H - 12.0) font-size="11" fill="#566173" text-anchor="end" { (last.day) }
                polyline.acquired points=(acquired) fill="none" stroke="#8a94a6" stroke-width="2" stroke-dasharray="6 4" {}
                polyline.licensed points=(licensed) fill="none" stroke="#2b5fa8" stroke-width="2.5" {}
                @for (i, d) in days.iter().enumerate() {
                    circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(d.report.currently_licensed))) r="3" fill="#2b5fa8" {}
                }
            } @else {
                text x=(W / 2.0) y=(H / 2.0) text-anchor="middle" font-size="13" fill="#667085" { "No audit rows in this range" }
            }
            text x=(W - PAD) y="16" font-size="11" text-anchor="end" fill="#2b5fa8" { "currently licensed" }
            text x=(W - PAD) y="30" font-size="11" text-anchor="end" fill="#8a94a6" { "acquired" }
        }
    }
}
