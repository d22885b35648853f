//! The license page's two user lists, each filtered and paged 50 rows at a time so an
//! enterprise of 10,000 users stays a page an admin can read: "Explain the count" (which
//! users each factor bills, so an admin sees why a user is billed) and "License problems"
//! (after a bulk import every user sits in the license-change cooldown, which must not bury
//! the user without Teams Phone: a summary by kind comes first, each kind a filter).
//!
//! Filters come from the query string; only known values are echoed into links, so a
//! crafted value cannot add parameters to them.

use maud::{Markup, html};

use super::Range;
use crate::operations::license_problems::Problem;
use crate::operations::license_report::UserExplained;

/// Rows per page of each list.
const PAGE: usize = 50;

/// The factors a user can be billed under, as the query names them, with their labels.
const FACTORS: [(&str, &str); 5] = [
    ("direct_routing", "Direct Routing"),
    ("operator_connect", "Operator Connect"),
    ("lcm", "LCM"),
    ("ui", "UI"),
    ("none", "not billed"),
];

/// Every problem kind `license_problems` reports, in the order the summary lists them.
const PROBLEMS: [(&str, &str); 8] = [
    ("no_teams", "No Teams"),
    (
        "business_suite_without_teams",
        "Business suite without Teams",
    ),
    ("no_teams_phone", "No Teams Phone"),
    ("unknown_sku", "Unknown SKU"),
    ("direct_route_sku", "Direct-route-only SKU on a user"),
    ("teams_phone_variant", "Teams Phone not Standard"),
    (
        "direct_route_unlicensed",
        "Direct route's Microsoft user lacks units",
    ),
    ("license_change_cooldown", "In license-change cooldown"),
];

/// The value of `table` that `given` names (`""` for none), as a `'static` str.
fn known(given: &str, table: &[(&'static str, &str)]) -> &'static str {
    table
        .iter()
        .find(|(k, _)| *k == given)
        .map_or("", |(k, _)| k)
}

fn label(kind: &str, table: &[(&str, &'static str)]) -> &'static str {
    table
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("Problem", |(_, l)| l)
}

/// The page's query state, to build each list's links from.
pub struct Lists<'a> {
    pub href: &'a str,
    pub q: &'a Range,
    pub from: &'a str,
    pub to: &'a str,
}

impl Lists<'_> {
    /// A link to this page with `factor`/`page` and `problem`/`problems_page` as given, the
    /// rest kept, landing at `anchor`.
    fn link(
        &self,
        (factor, page): (&str, usize),
        (problem, ppage): (&str, usize),
        anchor: &str,
    ) -> String {
        format!(
            "{}?from={}&to={}&factor={factor}&page={}&problem={problem}&problems_page={}#{anchor}",
            self.href,
            self.from,
            self.to,
            page.max(1),
            ppage.max(1)
        )
    }

    fn factor(&self) -> &'static str {
        known(&self.q.factor, &FACTORS)
    }

    fn problem(&self) -> &'static str {
        known(&self.q.problem, &PROBLEMS)
    }

    /// The hidden fields that keep the range and the other list's state in a filter form.
    fn kept(&self, (factor, page): (&str, usize), (problem, ppage): (&str, usize)) -> Markup {
        html! {
            input type="hidden" name="from" value=(self.from);
            input type="hidden" name="to" value=(self.to);
            @if !factor.is_empty() { input type="hidden" name="factor" value=(factor); }
            @if page > 1 { input type="hidden" name="page" value=(page); }
            @if !problem.is_empty() { input type="hidden" name="problem" value=(problem); }
            @if ppage > 1 { input type="hidden" name="problems_page" value=(ppage); }
        }
    }

    /// "Explain the count": the users billed under the chosen factor, paged.
    pub fn explain(&self, users: &[UserExplained]) -> Markup {
        let factor = self.factor();
        let wanted = |u: &&UserExplained| match self.q.factor.as_str() {
            "" => true,
            "none" => u.billed.is_none(),
            f => u.billed == Some(f),
        };
        let matching: Vec<&UserExplained> = users.iter().filter(wanted).collect();
        let (page, pages) = paging(matching.len(), self.q.page);
        let shown = matching.iter().skip((page - 1) * PAGE).take(PAGE);
        let problems = (self.problem(), self.q.problems_page);
        let link = |p: usize| self.link((factor, p), problems, "explain");
        html! {
            h2 #explain { "Explain the count" }
            form.inline method="get" action={ (self.href) "#explain" } {
                (self.kept(("", 1), problems))
                label { "Billed under"
                    select name="factor" {
                        option value="" selected[factor.is_empty()] { "all users" }
                        @for (v, t) in FACTORS {
                            option value=(v) selected[factor == v] { (t) }
                        }
                    }
                }
                button type="submit" { "Show" }
            }
            p.muted #explain-total { (matching.len()) " of " (users.len()) " monitored users" }
            div.scroll { table #explain-users {
                thead { tr { th { "User" } th { "Number" } th { "Meets" } th { "Billed under" } } }
                tbody {
                    @for u in shown {
                        @let meets = meets(u);
                        tr data-upn=(u.upn) {
                            td { (u.upn) } td { (u.number) }
                            td { @if meets.is_empty() { span.muted { "none" } } @else { (meets.join(", ")) } }
                            td.billed { (label(u.billed.unwrap_or("none"), &FACTORS)) }
                        }
                    }
                    @if matching.is_empty() { tr { td colspan="4" .muted { "No user." } } }
                }
            } }
            (pager(page, pages, link))
        }
    }

    /// "License problems": how many of each kind, then the chosen kind's rows, paged.
    pub fn problems(&self, problems: &[Problem]) -> Markup {
        let kind = self.problem();
        let matching: Vec<&Problem> = problems
            .iter()
            .filter(|p| self.q.problem.is_empty() || p.kind == self.q.problem)
            .collect();
        let (page, pages) = paging(matching.len(), self.q.problems_page);
        let shown = matching.iter().skip((page - 1) * PAGE).take(PAGE);
        let explain = (self.factor(), self.q.page);
        let link = |p: usize| self.link(explain, (kind, p), "problems");
        let counts: Vec<(&str, &str, usize)> = PROBLEMS
            .iter()
            .map(|(k, l)| (*k, *l, problems.iter().filter(|p| p.kind == *k).count()))
            .filter(|(_, _, n)| *n > 0)
            .collect();
        html! {
            h2 #problems { "License problems" }
            @if !counts.is_empty() {
                ul.summary #problem-kinds {
                    @for (k, l, n) in &counts {
                        li data-kind=(k) {
                            a href=(self.link(explain, (k, 1), "problems")) { (l) } ": " span.count { (n) }
                        }
                    }
                }
                form.inline method="get" action={ (self.href) "#problems" } {
                    (self.kept(explain, ("", 1)))
                    label { "Problem"
                        select name="problem" {
                            option value="" selected[kind.is_empty()] { "all problems" }
                            @for (k, l, _) in &counts {
                                option value=(k) selected[kind == *k] { (l) }
                            }
                        }
                    }
                    button type="submit" { "Show" }
                }
            }
            p.muted #problems-total { (matching.len()) " of " (problems.len()) " problems" }
            div.scroll { table #license-problems {
                thead { tr { th { "User or direct route" } th { "Problem" } th { "Detail" } } }
                tbody {
                    @for p in shown {
                        tr data-kind=(p.kind) { td { (p.subject) } td { (label(p.kind, &PROBLEMS)) } td { (p.detail) } }
                    }
                    @if problems.is_empty() { tr { td colspan="3" .muted { "No license problem." } } }
                    @else if matching.is_empty() { tr { td colspan="3" .muted { "No problem of this kind." } } }
                }
            } }
            (pager(page, pages, link))
        }
    }
}

/// The page to show (asked for, within range; page 0 is 1) and how many there are.
fn paging(rows: usize, asked: usize) -> (usize, usize) {
    let pages = rows.div_ceil(PAGE).max(1);
    (asked.clamp(1, pages), pages)
}

fn pager(page: usize, pages: usize, link: impl Fn(usize) -> String) -> Markup {
    html! {
        @if pages > 1 {
            p.pager {
                @if page > 1 { a href=(link(page - 1)) rel="prev" { "Previous" } " " }
                "Page " (page) " of " (pages)
                @if page < pages { " " a href=(link(page + 1)) rel="next" { "Next" } }
            }
        }
    }
}

/// The factors a user meets, each with why: an Operator Connect user names its number.
fn meets(u: &UserExplained) -> Vec<String> {
    let oc = u
        .operator_connect
        .as_ref()
        .map(|n| format!("Operator Connect (OC number {n}, UserAssigned)"));
    [
        ("Direct Routing", u.direct_routing),
        ("LCM", u.lcm),
        ("UI", u.ui),
    ]
    .into_iter()
    .filter(|(_, m)| *m)
    .map(|(n, _)| n.to_owned())
    .chain(oc)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: usize, billed: Option<&'static str>) -> UserExplained {
        UserExplained {
            upn: format!("u{n:03}@example.com"),
            number: format!("+1555{n:04}"),
            direct_routing: billed == Some("direct_routing"),
            operator_connect: None,
            lcm: billed == Some("lcm"),
            ui: false,
            billed,
        }
    }

    fn lists(q: &Range) -> Lists<'_> {
        Lists {
            href: "/ui/x",
            q,
            from: "2026-01-01",
            to: "2026-01-31",
        }
    }

    #[test]
    fn explain_the_count_pages_the_users_of_a_factor() {
        let users: Vec<_> = (0..130)
            .map(|n| user(n, if n % 2 == 0 { Some("lcm") } else { None }))
            .collect();
        let q = Range {
            factor: "lcm".into(),
            page: 2,
            ..Range::default()
        };
        let html = lists(&q).explain(&users).0;
        assert!(html.contains("65 of 130 monitored users"), "{html}");
        assert_eq!(
            html.matches("data-upn=").count(),
            15,
            "the second page of 65"
        );
        assert!(html.contains("Page 2 of 2") && html.contains("rel=\"prev\""));
        assert!(!html.contains("rel=\"next\""));
        assert!(html.contains("data-upn=\"u100@example.com\"") && !html.contains("u001@"));
        let q = Range {
            factor: "none".into(),
            page: 0,
            ..Range::default()
        };
        let html = lists(&q).explain(&users).0;
        assert!(html.contains("Page 1 of 2") && html.contains("rel=\"next\""));
        assert_eq!(html.matches(">not billed</td>").count(), 50);
    }

    fn problem(n: usize, kind: &'static str) -> Problem {
        Problem {
            subject: format!("u{n:05}@example.com"),
            kind,
            detail: String::new(),
        }
    }

    /// 10,000 users in the cooldown after an import must not hide the one without Teams
    /// Phone: the summary counts each kind, the table pages, and a kind filters it.
    #[test]
    fn license_problems_are_summarised_by_kind_filtered_and_paged() {
        let mut problems: Vec<_> = (0..10_000)
            .map(|n| problem(n, "license_change_cooldown"))
            .collect();
        problems.insert(7, problem(7, "no_teams_phone"));
        let q = Range::default();
        let html = lists(&q).problems(&problems).0;
        assert!(
            html.contains("data-kind=\"no_teams_phone\"><a href=\"/ui/x?from=2026-01-01&amp;to=2026-01-31&amp;factor=&amp;page=1&amp;problem=no_teams_phone&amp;problems_page=1#problems\">No Teams Phone</a>: <span class=\"count\">1</span>"),
            "{html}"
        );
        assert!(
            html.contains(">In license-change cooldown</a>: <span class=\"count\">10000</span>")
        );
        assert!(html.contains("10001 of 10001 problems") && html.contains("Page 1 of 201"));
        assert_eq!(html.matches("<tr data-kind=").count(), PAGE);

        let q = Range {
            problem: "no_teams_phone".into(),
            ..Range::default()
        };
        let html = lists(&q).problems(&problems).0;
        assert!(html.contains("1 of 10001 problems"), "{html}");
        assert_eq!(html.matches("<tr data-kind=\"no_teams_phone\">").count(), 1);
        assert!(!html.contains("class=\"pager\""));

        // An unknown kind shows nothing and is not echoed into any link.
        let q = Range {
            problem: "x&page=9".into(),
            problems_page: 3,
            ..Range::default()
        };
        let html = lists(&q).problems(&problems).0;
        assert!(html.contains("0 of 10001 problems") && html.contains("No problem of this kind."));
        assert!(!html.contains("page=9"), "{html}");
    }

    #[test]
    fn no_problem_says_so() {
        let html = lists(&Range::default()).problems(&[]).0;
        assert!(html.contains("No license problem.") && !html.contains("problem-kinds"));
    }
}
