//! The page frame every console page shares: one stylesheet, the navigation, sign-out, and
//! HTML that reads fine without script. maud escapes every interpolated string, so a name an
//! admin provisioned is shown as text, never markup.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::Session;

/// The whole page: `title` is also the heading.
pub fn frame(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · teamsgw" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    a.brand href="/ui/" { "teamsgw" }
                    @if let Some(s) = session {
                        nav {
                            a href="/ui/" { "Enterprises" }
                            a href="/ui/operations" { "Operations" }
                        }
                        form.signout method="post" action="/ui/sign-out" {
                            (csrf_field(s))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A message box: `kind` is `error`, `warning` or `info`.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { p class={ "notice " (kind) } role="status" { (text) } }
}

/// A utilisation bar: amber from `warning_percent`, red at 100 % (the license monitor's rule).
pub fn utilisation(licensed: u32, acquired: u32, warning_percent: u8) -> Markup {
    let percent = utilisation_percent(licensed, acquired);
    let level = if percent >= 100 {
        "red"
    } else if warning_percent > 0 && percent >= u64::from(warning_percent) {
        "amber"
    } else {
        "green"
    };
    // SVG attributes, not a style attribute: the CSP allows no inline style.
    let width = percent.min(100) * 90 / 100;
    html! {
        svg class={ "bar " (level) } width="90" height="10" viewBox="0 0 90 10" role="img" aria-label={ (percent) " %" } {
            rect width="90" height="10" rx="3" {}
            rect.fill width=(width) height="10" rx="3" {}
        }
        " " (percent) " %"
    }
}

/// Licensed of acquired, in percent (any use of none acquired is 100 %), capped at 999.
pub fn utilisation_percent(licensed: u32, acquired: u32) -> u64 {
    match acquired {
        0 => u64::from(licensed > 0) * 100,
        a => (u64::from(licensed) * 100 / u64::from(a)).min(999),
    }
}

/// The console's one stylesheet.
pub const STYLESHEET: PreEscaped<&str> = PreEscaped(
    r#"*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#f5f7fa}
header{display:flex;flex-wrap:wrap;align-items:center;gap:1rem;padding:.6rem 1.2rem;background:#1d2d44;color:#fff}
header a{color:#fff;text-decoration:none}
header nav{display:flex;gap:1rem;flex:1}
.brand{font-weight:700;letter-spacing:.02em}
.signout button{background:transparent;color:#fff;border:1px solid #8aa0bd;border-radius:4px;padding:.2rem .7rem;cursor:pointer}
main{max-width:1200px;margin:0 auto;padding:1rem 1.2rem 3rem}
h1{font-size:1.4rem;margin:.4rem 0 1rem}
h2{font-size:1.1rem;margin:1.6rem 0 .6rem}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d9dee5}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e6e9ee;vertical-align:top}
th{background:#eef1f5;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
.notice{padding:.6rem .8rem;border-radius:4px;border:1px solid}
.notice.error{background:#fdecec;border-color:#e0a3a3}
.notice.warning{background:#fff6e0;border-color:#e5c46b}
.notice.info{background:#e8f1fb;border-color:#a7c3e6}
.bar{vertical-align:middle}.bar rect{fill:#e6e9ee}
.bar.green rect.fill{fill:#3c9a5f}.bar.amber rect.fill{fill:#e0a020}.bar.red rect.fill{fill:#c83c3c}
form.inline{display:flex;flex-wrap:wrap;gap:.6rem;align-items:end;margin:.6rem 0}
label{display:flex;flex-direction:column;font-size:.85rem;gap:.15rem}
input,select,button{font:inherit;padding:.3rem .5rem;border:1px solid #b8c1cc;border-radius:4px;background:#fff}
button{background:#2b5fa8;color:#fff;border-color:#2b5fa8;cursor:pointer}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:.6rem;margin:0 0 1rem}
.facts div{background:#fff;border:1px solid #d9dee5;border-radius:4px;padding:.5rem .7rem}
.facts dt{font-size:.8rem;color:#566173}.facts dd{margin:0;font-size:1.3rem;font-weight:600}
.facts dd.time{font-size:1rem;font-weight:500}
svg.chart{background:#fff;border:1px solid #d9dee5;max-width:100%;height:auto}
.muted{color:#667085}
ul.summary{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;list-style:none;padding:0;margin:.4rem 0}
ul.summary .count{font-weight:600;font-variant-numeric:tabular-nums}
@media (max-width:640px){main{padding:.6rem}th,td{padding:.3rem .4rem}h1{font-size:1.2rem}}
"#,
);
