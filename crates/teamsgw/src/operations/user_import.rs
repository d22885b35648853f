//! `teamsgw user import`: users from a CSV or JSON export shaped like `Get-CsOnlineUser`.
//!
//! Every row is validated first, against the file and the database (UPNs, numbers, PBXs), so
//! each bad row is reported with its line number and reason; then the good rows are written in
//! one transaction (or none with `--strict`, or nothing at all with `--dry-run`). A row whose
//! user already exists with the same number and PBX is unchanged, so re-importing a file is
//! idempotent. Imported users are not managed by UI (license factor 3) until changed.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;
use teamsgw_license::catalogue::{self as license, Holder, Holding};
use teamsgw_store::{NewUser, ProvisionError, validate_e164, validate_upn};

/// One parsed row: its line in the file and its columns (lower-cased names).
pub struct Row {
    pub line: usize,
    pub columns: HashMap<String, String>,
}

/// Reads CSV (header row) or JSON (array of objects); the first non-blank byte decides.
pub fn read(path: &Path) -> Result<Vec<Row>, ProvisionError> {
    let bad = |rule: String| ProvisionError::Invalid {
        field: "file",
        rule,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    parse(&text)
}

/// [`read`] of a file's text.
pub fn parse(text: &str) -> Result<Vec<Row>, ProvisionError> {
    let bad = |rule: String| ProvisionError::Invalid {
        field: "file",
        rule,
    };
    if text.trim_start().starts_with('[') {
        read_json(text).map_err(bad)
    } else {
        read_csv(text).map_err(bad)
    }
}

fn read_csv(text: &str) -> Result<Vec<Row>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("CSV header: {e}"))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("CSV: {e}"))?;
        // The line of the record's first byte: the csv crate's own line count is one short
        // for CRLF files (what PowerShell writes on Windows), as it ends a record at the CR
        // and places the next one at the LF.
        let line = record.position().map_or(0, |p| {
            let bytes = text.as_bytes();
            let mut at = usize::try_from(p.byte())
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            while bytes.get(at).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                at += 1;
            }
            bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1
        });
        let columns = header
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_owned))
            .collect();
        rows.push(Row { line, columns });
    }
    Ok(rows)
}

fn read_json(text: &str) -> Result<Vec<Row>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("JSON: {e}"))?;
    let Value::Array(items) = value else {
        return Err("JSON: expected an array of objects".into());
    };
    // JSON has no line per row; report the element's position (1-based) instead.
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(map) = item else {
                return Err(format!("JSON element {}: not an object", i + 1));
            };
            let columns = map
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        Value::Bool(b) => if b { "True" } else { "False" }.to_owned(),
                        other => other.to_string(),
                    };
                    (k.to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
            Ok(Row {
                line: i + 1,
                columns,
            })
        })
        .collect()
}

/// What the database already holds for the enterprise.
pub struct Existing {
    /// UPN → (number, PBX name).
    pub users: HashMap<String, (String, String)>,
    /// Numbers held in the enterprise.
    pub numbers: HashSet<String>,
    pub pbxs: HashSet<String>,
}

/// The enterprise's purchase date per SKU part number (upper case), which decides whether a
/// Business suite carries Teams (licensing.md §3; seeds).
pub type SkuDates = HashMap<String, Option<license::Date>>;

pub fn sku_dates(skus: &[teamsgw_store::EnterpriseSku]) -> SkuDates {
    skus.iter()
        .map(|s| {
            (
                s.part_number.to_ascii_uppercase(),
                s.acquired_on.as_deref().and_then(license::Date::parse),
            )
        })
        .collect()
}

/// Checks a user's SKUs (Teams + Teams Phone) with the enterprise's purchase dates; returns
/// warnings when usable.
pub fn check_user_skus(skus: &[String], dates: &SkuDates) -> Result<Vec<String>, String> {
    license::check(&holdings(skus, dates), Holder::User).map_err(|e| e.to_string())
}

/// SKU part numbers with the enterprise's purchase date of each.
pub fn holdings(skus: &[String], dates: &SkuDates) -> Vec<Holding> {
    skus.iter()
        .map(|p| Holding {
            part_number: p.clone(),
            acquired_on: dates.get(&p.to_ascii_uppercase()).copied().flatten(),
        })
        .collect()
}

/// The outcome of validating a file.
#[derive(Default)]
pub struct Plan {
    pub add: Vec<NewUser>,
    pub unchanged: usize,
    /// (line, reason) for each refused row.
    pub refused: Vec<(usize, String)>,
}

fn column<'a>(row: &'a Row, name: &str) -> Option<&'a str> {
    row.columns
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn list(row: &Row, name: &str) -> Vec<String> {
    column(row, name)
        .map(|v| {
            v.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `tel:+E164[;ext=...]` → (number, extension).
fn line_uri(uri: &str) -> Result<(String, Option<String>), String> {
    let rest = uri
        .strip_prefix("tel:")
        .or_else(|| uri.strip_prefix("TEL:"))
        .ok_or_else(|| format!("LineUri {uri:?} is not tel:+E164[;ext=...]"))?;
    let mut parts = rest.split(';');
    let number = parts.next().unwrap_or_default();
    let number = validate_e164(number).map_err(|e| format!("LineUri: {e}"))?;
    let ext = parts
        .filter_map(|p| p.strip_prefix("ext="))
        .next()
        .map(str::to_owned);
    Ok((number, ext))
}

fn row_to_user(
    row: &Row,
    enterprise: &str,
    pbx: &str,
    dates: &SkuDates,
) -> Result<NewUser, String> {
    let upn = column(row, "userprincipalname").ok_or("UserPrincipalName is missing")?;
    let upn = validate_upn(upn).map_err(|e| e.to_string())?;
    let (number, ext) = line_uri(column(row, "lineuri").ok_or("LineUri is missing")?)?;
    let extension = column(row, "extension")
        .map(str::to_owned)
        .or(ext)
        .ok_or("Extension is missing (and LineUri has no ;ext=)")?;
    let ev_enabled = match column(row, "enterprisevoiceenabled") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => return Err(format!("EnterpriseVoiceEnabled {v:?} is not True or False")),
    };
    let password = column(row, "password").ok_or("Password is missing")?;
    let skus = list(row, "skus");
    check_user_skus(&skus, dates).map_err(|e| format!("Skus: {e}"))?;
    Ok(NewUser {
        enterprise: enterprise.to_owned(),
        pbx: column(row, "pbx").unwrap_or(pbx).to_owned(),
        upn,
        number,
        extension,
        auth_user: column(row, "authuser").map(str::to_owned),
        password: password.to_owned(),
        skus,
        ev_enabled,
        voice_routing_policy: column(row, "onlinevoiceroutingpolicy").map(str::to_owned),
        pstn_gateway: column(row, "onlinepstngateway").map(str::to_owned),
        groups: list(row, "groups"),
        managed_by_ui: false,
    })
}

/// Validates every row against the file and the database; nothing is written.
pub fn plan(
    rows: &[Row],
    enterprise: &str,
    pbx: &str,
    existing: &Existing,
    dates: &SkuDates,
) -> Plan {
    let mut plan = Plan::default();
    let mut upns = HashSet::new();
    let mut numbers = HashSet::new();
    for row in rows {
        let user = match row_to_user(row, enterprise, pbx, dates) {
            Ok(user) => user,
            Err(reason) => {
                plan.refused.push((row.line, reason));
                continue;
            }
        };
        let reason = if !existing.pbxs.contains(&user.pbx) {
            Some(format!(
                "PBX {:?} does not exist in {enterprise:?}",
                user.pbx
            ))
        } else if let Some((number, pbx)) = existing.users.get(&user.upn) {
            if *number == user.number && *pbx == user.pbx {
                plan.unchanged += 1;
                continue;
            }
            Some(format!(
                "{} exists with another number or PBX (change it with user set)",
                user.upn
            ))
        } else if !upns.insert(user.upn.clone()) {
            Some(format!("{} appears twice in the file", user.upn))
        } else if existing.numbers.contains(&user.number) || !numbers.insert(user.number.clone()) {
            Some(format!(
                "number {} is already taken in {enterprise:?}",
                user.number
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => plan.refused.push((row.line, reason)),
            None => plan.add.push(user),
        }
    }
    plan
}
