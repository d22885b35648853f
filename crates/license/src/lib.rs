//! Microsoft licensing for teamsgw: the SKU catalogue (part numbers and the service plans they
//! contain), the license checks applied when provisioning, and the prioritised license-factor
//! counting that carriers bill from.
//!
//! Owns: pure rules over plain data (users, SKUs, groups, service numbers), so they can be
//! tested without a database.
//!
//! Must never know: SQL, SIP, media or HTTP. The store feeds it rows; the binary prints results.

pub mod catalogue;
pub mod factors;
