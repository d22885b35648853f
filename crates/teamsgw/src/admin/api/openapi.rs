//! The OpenAPI 3.0 description of `/api/v1`, written out by hand next to the handlers it
//! describes. `schemathesis` checks the running daemon against it in the test suite, so a
//! handler and its description cannot drift apart unnoticed.

use serde_json::{Map, Value, json};
use teamsgw_store::MAX_CPS;

pub(super) fn string() -> Value {
    json!({"type": "string"})
}

pub(super) fn nullable_string() -> Value {
    json!({"type": "string", "nullable": true})
}

pub(super) fn pattern(regex: &str, example: &str) -> Value {
    json!({"type": "string", "pattern": regex, "example": example})
}

fn guid() -> Value {
    pattern(
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        "0e1b2c3d-1111-2222-3333-444455556666",
    )
}

pub(super) fn e164() -> Value {
    pattern("^\\+[1-9][0-9]{1,14}$", "+15551230001")
}

pub(super) fn day() -> Value {
    pattern("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "2026-11-23")
}

pub(super) fn upn() -> Value {
    pattern(
        "^[a-z0-9._-]{1,20}@[a-z0-9-]{1,20}\\.example$",
        "alice@acme.example",
    )
}

fn integer(min: i64, max: i64) -> Value {
    json!({"type": "integer", "format": "int64", "minimum": min, "maximum": max})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

pub(super) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// An object schema; `required` lists the fields that must be present.
pub(super) fn object(properties: Value, required: &[&str], closed: bool) -> Value {
    let mut o = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    if closed {
        o["additionalProperties"] = json!(false);
    }
    o
}

fn body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema_ref(schema)}}})
}

pub(super) fn ok(status: &str, description: &str, schema: Option<Value>) -> (String, Value) {
    let mut r = json!({"description": description});
    if let Some(schema) = schema {
        r["content"] = json!({"application/json": {"schema": schema}});
    }
    (status.to_owned(), r)
}

pub(super) fn list_of(name: &str) -> Option<Value> {
    Some(json!({"type": "array", "items": schema_ref(name)}))
}

/// An operation; every one can also answer the shared error responses.
pub(super) fn op(
    summary: &str,
    params: Vec<Value>,
    request: Option<&str>,
    success: (String, Value),
) -> Value {
    let mut responses = Map::new();
    responses.insert(success.0, success.1);
    for code in ["400", "401", "404", "409", "503"] {
        responses.insert(
            code.to_owned(),
            json!({"$ref": format!("#/components/responses/E{code}")}),
        );
    }
    let mut o = json!({"summary": summary, "responses": responses});
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some(schema) = request {
        o["requestBody"] = body(schema);
    }
    o
}

pub(super) fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": string()})
}

pub(super) fn query(name: &str, required: bool, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": schema})
}

fn cascade() -> Value {
    query("cascade", false, json!({"type": "boolean"}))
}

pub(super) fn enterprise_query(required: bool) -> Value {
    query("enterprise", required, string())
}

pub(super) fn counter() -> Value {
    json!({"type": "integer", "format": "int64", "minimum": 0})
}

fn schemas() -> Value {
    let mut all = provisioning_schemas();
    if let Some(all) = all.as_object_mut() {
        for more in [call_schemas(), super::oc_numbers::openapi_schemas()] {
            if let Value::Object(more) = more {
                all.extend(more);
            }
        }
    }
    all
}

/// The call layer's schemas (apart from the others: one `json!` that size passes the macro
/// recursion limit).
fn call_schemas() -> Value {
    json!({
        "Call": object(
            json!({
                "call_id": string(),
                "direction": {"type": "string", "enum": ["from_teams", "to_teams"]},
                "enterprise": string(), "user": string(), "caller": string(), "callee": string(),
                "state": {"type": "string", "enum": ["proceeding", "early", "answered", "confirmed", "terminating", "done"]},
                "seconds": counter(),
            }),
            &["call_id", "direction", "enterprise", "user", "caller", "callee", "state", "seconds"],
            false,
        ),
        "CdrLeg": object(
            json!({
                "packets_in": counter(), "packets_out": counter(), "bytes_in": counter(),
                "bytes_out": counter(), "lost": counter(), "jitter": counter(),
                "srtp_auth_failures": counter(),
            }),
            &["packets_in", "packets_out", "bytes_in", "bytes_out", "lost", "jitter", "srtp_auth_failures"],
            false,
        ),
        "Cdr": object(
            json!({
                "call_id": string(),
                "direction": {"type": "string", "enum": ["from_teams", "to_teams"]},
                "enterprise": string(), "direct_route": string(), "user": string(),
                "caller": string(), "callee": string(), "teams_proxy": nullable_string(),
                "failovers": strings(),
                "started_at": string(), "answered_at": nullable_string(), "ended_at": string(),
                "status": {"type": "integer", "format": "int64"},
                "result": {"type": "string", "enum": ["answered", "busy", "no_answer", "rejected", "failed", "cancelled"]},
                "reason": string(),
                "hung_up_by": {"type": "string", "enum": ["teams", "pbx", "gateway"], "nullable": true},
                "codec": nullable_string(),
                "emergency": {"type": "boolean"},
                "service": {"type": "string", "enum": ["direct-routing", "operator-connect"]},
                "bye_lost": {"type": "string", "enum": ["teams", "pbx"], "nullable": true},
                "teams": schema_ref("CdrLeg"), "pbx": schema_ref("CdrLeg"),
            }),
            &[
                "call_id", "direction", "enterprise", "direct_route", "user", "caller", "callee",
                "teams_proxy", "failovers", "started_at", "answered_at", "ended_at", "status",
                "result", "reason", "hung_up_by", "codec", "emergency", "service", "bye_lost",
                "teams", "pbx",
            ],
            false,
        ),
    })
}

fn provisioning_schemas() -> Value {
    let factor = object(
        json!({"counted": integer(0, u32::MAX.into()), "configured": integer(0, u32::MAX.into()), "enabled": {"type": "boolean"}}),
        &["counted", "configured", "enabled"],
        false,
    );
    let report = object(
        json!({
            "enterprise": string(),
            "acquired": integer(0, u32::MAX.into()),
            "currently_licensed": integer(0, u32::MAX.into()),
            "available": {"type": "integer", "format": "int64"},
            "monitored_users": integer(0, u32::MAX.into()),
            "factors": object(json!({
                "direct_routing": schema_ref("Factor"),
                "operator_connect": schema_ref("Factor"),
                "lcm": schema_ref("Factor"),
                "ui": schema_ref("Factor"),
                "service_numbers": schema_ref("Factor"),
            }), &["direct_routing", "operator_connect", "lcm", "ui", "service_numbers"], false),
            "calculated_at": {"type": "string", "format": "date-time", "description": "when an audit row recorded this count"},
        }),
        &[
            "enterprise",
            "acquired",
            "currently_licensed",
            "available",
            "monitored_users",
            "factors",
        ],
        false,
    );
    let flag = json!({"type": "boolean", "nullable": true});
    let service = json!({"type": "string", "enum": ["direct-routing", "operator-connect"]});
    let enterprise_fields = json!({
        "name": string(),
        "tenant_id": string(),
        "service": service,
        "acquired_licenses": integer(0, i64::MAX),
        "lcm_factor": flag,
        "ui_factor": flag,
        "service_numbers_factor": flag,
        "emergency_numbers": {"type": "array", "items": string(), "nullable": true},
    });
    let mut detail_fields = enterprise_fields.clone();
    if let Some(m) = detail_fields.as_object_mut() {
        m.insert(
            "skus".into(),
            json!({"type": "array", "items": schema_ref("Sku")}),
        );
        m.insert(
            "direct_routes".into(),
            json!({"type": "array", "items": schema_ref("DirectRoute")}),
        );
        for n in [
            "pbxs",
            "users",
            "service_numbers",
            "lcm_templates",
            "oc_numbers",
        ] {
            m.insert(n.into(), integer(0, i64::MAX));
        }
    }
    let enterprise_required = [
        "name",
        "tenant_id",
        "service",
        "acquired_licenses",
        "lcm_factor",
        "ui_factor",
        "service_numbers_factor",
        "emergency_numbers",
    ];
    let mut detail_required = enterprise_required.to_vec();
    detail_required.extend([
        "skus",
        "direct_routes",
        "pbxs",
        "users",
        "service_numbers",
        "lcm_templates",
        "oc_numbers",
    ]);
    let transport = json!({"type": "string", "enum": ["udp", "tcp", "tls"]});
    let user_fields = json!({
        "enterprise": string(), "pbx": string(), "upn": string(), "number": string(),
        "extension": string(), "auth_user": string(), "skus": strings(),
        "ev_enabled": {"type": "boolean"}, "voice_routing_policy": nullable_string(),
        "pstn_gateway": nullable_string(), "groups": strings(),
        "managed_by_ui": {"type": "boolean"},
        "last_license_change": {"type": "integer", "format": "int64", "nullable": true},
        "enabled": {"type": "boolean"},
    });
    json!({
        "Error": object(
            json!({"error": string(), "field": nullable_string(), "rule": string()}),
            &["error", "field", "rule"],
            false,
        ),
        "Factor": factor,
        "EnterpriseReport": report,
        "AuditDay": object(json!({"day": string(), "report": schema_ref("EnterpriseReport")}), &["day", "report"], false),
        "Enterprise": object(enterprise_fields, &enterprise_required, false),
        "EnterpriseDetail": object(detail_fields, &detail_required, false),
        "EnterpriseAdd": object(
            json!({"name": string(), "tenant_id": guid(), "acquired_licenses": integer(0, i64::MAX), "service": service}),
            &["name", "tenant_id", "acquired_licenses"],
            true,
        ),
        "EnterpriseSet": object(
            json!({
                "acquired_licenses": integer(0, i64::MAX),
                "license_factors": {"type": "array", "items": {"type": "string", "example": "lcm=off"}},
                "emergency_numbers": {"type": "string", "example": "911,933", "description": "The enterprise's own emergency numbers, comma-separated, or \"default\" to follow calls.emergency_numbers"},
                "service": service,
            }),
            &[],
            true,
        ),
        "Sku": object(
            json!({"part_number": string(), "units": integer(0, i64::MAX), "acquired_on": nullable_string()}),
            &["part_number", "units", "acquired_on"],
            false,
        ),
        "SkuAdd": object(
            json!({"sku": string(), "units": integer(0, i64::MAX), "acquired_on": day()}),
            &["sku", "units"],
            true,
        ),
        "DirectRoute": object(
            json!({
                "enterprise": string(), "fqdn": string(), "port": integer(1, 65535),
                "max_sessions": {"type": "integer", "format": "int64", "minimum": 1, "maximum": u32::MAX, "nullable": true},
                "max_cps": {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_CPS, "nullable": true},
                "ms_user": nullable_string(), "licenses": strings(),
                "last_license_change": {"type": "integer", "format": "int64", "nullable": true},
            }),
            &["enterprise", "fqdn", "port", "max_sessions", "max_cps", "ms_user", "licenses", "last_license_change"],
            false,
        ),
        "DirectRouteAdd": object(
            json!({
                "enterprise": string(), "fqdn": string(), "port": integer(0, 65535),
                "max_sessions": {"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX, "nullable": true},
                "max_cps": {"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX, "nullable": true},
                "ms_user": nullable_string(),
            }),
            &["enterprise", "fqdn"],
            true,
        ),
        "DirectRouteSet": object(
            json!({
                "max_sessions": {"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX, "nullable": true},
                "max_cps": {"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX, "nullable": true},
            }),
            &[],
            true,
        ),
        "Pbx": object(
            json!({
                "enterprise": string(), "name": string(), "domain": string(),
                "proxy": nullable_string(), "transport": transport, "expires": integer(0, u32::MAX.into()),
                "codecs": strings(), "number_format": {"type": "string", "enum": ["e164", "digits"]},
                "country_code": nullable_string(), "diversion": {"type": "boolean"},
            }),
            &["enterprise", "name", "domain", "proxy", "transport", "expires", "codecs", "number_format", "country_code", "diversion"],
            false,
        ),
        "PbxAdd": object(
            json!({
                "enterprise": string(), "name": string(), "domain": string(),
                "proxy": nullable_string(), "transport": string(), "expires": integer(0, u32::MAX.into()),
                "codecs": strings(), "number_format": string(), "country_code": nullable_string(),
                "diversion": {"type": "boolean"},
            }),
            &["enterprise", "name", "domain"],
            true,
        ),
        "PbxSet": object(
            json!({
                "domain": nullable_string(), "proxy": nullable_string(),
                "transport": nullable_string(),
                "expires": {"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX, "nullable": true},
                "codecs": {"type": "array", "items": string(), "nullable": true},
                "number_format": nullable_string(), "country_code": nullable_string(),
                "diversion": {"type": "boolean", "nullable": true},
            }),
            &[],
            true,
        ),
        "User": object(
            user_fields,
            &["enterprise", "pbx", "upn", "number", "extension", "auth_user", "skus", "ev_enabled",
              "voice_routing_policy", "pstn_gateway", "groups", "managed_by_ui", "last_license_change",
              "enabled"],
            false,
        ),
        "UserAdd": object(
            json!({
                "enterprise": string(), "pbx": string(), "upn": upn(), "number": e164(),
                "extension": string(), "auth_user": nullable_string(),
                "password": {"type": "string", "writeOnly": true}, "skus": strings(),
                "ev_enabled": {"type": "boolean"}, "voice_routing_policy": nullable_string(),
                "pstn_gateway": nullable_string(), "groups": strings(),
            }),
            &["enterprise", "pbx", "upn", "number", "extension", "password"],
            true,
        ),
        "UserSet": object(
            json!({
                "pbx": nullable_string(), "number": nullable_string(), "extension": nullable_string(),
                "auth_user": nullable_string(),
                "password": {"type": "string", "writeOnly": true, "nullable": true},
                "skus": {"type": "array", "items": string(), "nullable": true},
                "ev_enabled": {"type": "boolean", "nullable": true},
                "voice_routing_policy": nullable_string(), "pstn_gateway": nullable_string(),
                "groups": {"type": "array", "items": string(), "nullable": true},
                "enabled": {"type": "boolean", "nullable": true},
                "force": {"type": "boolean"},
            }),
            &[],
            true,
        ),
        "ServiceNumbers": object(
            json!({"enterprise": string(), "first": string(), "last": string(), "tag": string()}),
            &["enterprise", "first", "last", "tag"],
            false,
        ),
        "ServiceNumbersAdd": object(
            json!({"enterprise": string(), "number": {"type": "string", "example": "+4930100-+4930199"}, "tag": string()}),
            &["enterprise", "number", "tag"],
            true,
        ),
        "LcmTemplate": object(
            json!({"enterprise": string(), "name": string(), "group": string()}),
            &["enterprise", "name", "group"],
            false,
        ),
        "Registration": object(
            json!({
                "upn": string(), "enterprise": string(),
                "state": {"type": "string", "enum": ["registering", "registered", "backoff", "auth_failed", "disabled", "unregistering"]},
                "last_error": nullable_string(),
                "next_attempt": {"type": "integer", "format": "int64", "minimum": 0, "nullable": true},
            }),
            &["upn", "enterprise", "state", "last_error", "next_attempt"],
            false,
        ),
        "Proxy": object(
            json!({
                "proxy": string(), "up": {"type": "boolean"}, "last_result": nullable_string(),
                "next_probe": {"type": "integer", "format": "int64", "minimum": 0},
            }),
            &["proxy", "up", "last_result", "next_probe"],
            false,
        ),
        "LcmTemplateAdd": object(
            json!({"enterprise": string(), "name": string(), "group": string()}),
            &["enterprise", "name", "group"],
            true,
        ),
    })
}

fn error_responses() -> Value {
    let mut out = Map::new();
    for (code, description) in [
        (
            "400",
            "Bad input: `field` names it and `rule` says what it must be.",
        ),
        (
            "401",
            "Missing or wrong bearer token (or admin.token unset).",
        ),
        (
            "404",
            "No such enterprise, direct route, PBX, user, number or template.",
        ),
        (
            "409",
            "Already exists, or still has children (retry with cascade=true).",
        ),
        ("503", "The provisioning database is unavailable."),
    ] {
        out.insert(
            format!("E{code}"),
            json!({"description": description, "content": {"application/json": {"schema": schema_ref("Error")}}}),
        );
    }
    Value::Object(out)
}

pub fn document() -> Value {
    let created = |name: &str| ok("201", "Created.", Some(schema_ref(name)));
    let fine = |name: &str| ok("200", "OK.", Some(schema_ref(name)));
    let gone = || ok("204", "Deleted.", None);
    let list = |name: &str| ok("200", "OK.", list_of(name));
    let ep = || path_param("enterprise");
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "teamsgw provisioning API",
            "version": crate::build_info::VERSION,
            "description": "The CLI's provisioning operations over HTTP. Changes take effect in the routing snapshot before the response.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/enterprises": {
                "get": op("List enterprises", vec![], None, list("Enterprise")),
                "post": op("Create an enterprise", vec![], Some("EnterpriseAdd"), created("Enterprise")),
            },
            "/enterprises/{name}": {
                "parameters": [path_param("name")],
                "get": op("One enterprise with SKUs, direct routes and counts", vec![], None, fine("EnterpriseDetail")),
                "patch": op("Change acquired licenses or license factors", vec![], Some("EnterpriseSet"), fine("Enterprise")),
                "delete": op("Delete an enterprise (children only with cascade)", vec![cascade()], None, gone()),
            },
            "/enterprises/{name}/skus": {
                "parameters": [path_param("name")],
                "post": op("Record units of a Microsoft SKU", vec![], Some("SkuAdd"), created("Sku")),
            },
            "/direct-routes": {
                "get": op("List direct routes", vec![enterprise_query(false)], None, list("DirectRoute")),
                "post": op("Add a direct route (licenses its Microsoft user from the pool)", vec![], Some("DirectRouteAdd"), created("DirectRoute")),
            },
            "/direct-routes/{fqdn}": {
                "parameters": [path_param("fqdn")],
                "patch": op("Change a direct route's limits (0 removes one)", vec![], Some("DirectRouteSet"), fine("DirectRoute")),
                "delete": op("Delete a direct route", vec![cascade()], None, gone()),
            },
            "/pbxs": {
                "get": op("List the PBXs of an enterprise", vec![enterprise_query(true)], None, list("Pbx")),
                "post": op("Add a PBX", vec![], Some("PbxAdd"), created("Pbx")),
            },
            "/pbxs/{enterprise}/{name}": {
                "parameters": [ep(), path_param("name")],
                "patch": op("Change a PBX", vec![], Some("PbxSet"), fine("Pbx")),
                "delete": op("Delete a PBX (users only with cascade)", vec![cascade()], None, gone()),
            },
            "/users": {
                "get": op("List the users of an enterprise", vec![enterprise_query(true)], None, list("User")),
                "post": op("Add a user", vec![], Some("UserAdd"), created("User")),
            },
            "/users/{upn}": {
                "parameters": [path_param("upn")],
                "get": op("One user", vec![], None, fine("User")),
                "patch": op("Change a user", vec![], Some("UserSet"), fine("User")),
                "delete": op("Delete a user", vec![], None, gone()),
            },
            "/service-numbers": {
                "get": op("List service numbers", vec![enterprise_query(true)], None, list("ServiceNumbers")),
                "post": op("Add a service number or range", vec![], Some("ServiceNumbersAdd"), created("ServiceNumbers")),
            },
            "/service-numbers/{enterprise}/{number}": {
                "parameters": [ep(), path_param("number")],
                "delete": op("Delete a service number or the range starting at it", vec![], None, gone()),
            },
            "/lcm-templates": {
                "get": op("List LCM templates", vec![enterprise_query(true)], None, list("LcmTemplate")),
                "post": op("Add an LCM template", vec![], Some("LcmTemplateAdd"), created("LcmTemplate")),
            },
            "/lcm-templates/{enterprise}/{name}": {
                "parameters": [ep(), path_param("name")],
                "delete": op("Delete an LCM template", vec![], None, gone()),
            },
            "/license/report": {
                "get": op("License usage per enterprise", vec![enterprise_query(false)], None, list("EnterpriseReport")),
            },
            "/license/history": {
                "get": op(
                    "Daily license audit rows",
                    vec![enterprise_query(true), query("from", true, day()), query("to", true, day())],
                    None,
                    list("AuditDay"),
                ),
            },
            "/registrations": {
                "get": op("Registration state of each user at its PBX (live)", vec![enterprise_query(false)], None, list("Registration")),
            },
            "/trunk": {
                "get": op("Health of each Teams SIP proxy (live)", vec![], None, list("Proxy")),
            },
            "/calls": {
                "get": op("Calls up or being set up (live)", vec![], None, list("Call")),
            },
            "/cdrs": {
                "get": op(
                    "Call detail records, oldest first",
                    vec![enterprise_query(false), query("from", false, day()), query("to", false, day())],
                    None,
                    list("Cdr"),
                ),
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "OK.", "content": {"application/json": {"schema": {"type": "object"}}}}},
                },
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
            "responses": error_responses(),
        },
    });
    if let (Some(paths), Value::Object(oc)) = (
        doc["paths"].as_object_mut(),
        super::oc_numbers::openapi_paths(),
    ) {
        paths.extend(oc);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` points at something defined, so clients can resolve the whole document.
    #[test]
    fn references_resolve() {
        let doc = document();
        fn walk(v: &Value, doc: &Value, seen: &mut usize) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let pointer = r.trim_start_matches('#');
                        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                        *seen += 1;
                    }
                    m.values().for_each(|x| walk(x, doc, seen));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc, seen)),
                _ => {}
            }
        }
        let mut seen = 0;
        walk(&doc, &doc, &mut seen);
        assert!(seen > 50, "only {seen} references");
    }
}
