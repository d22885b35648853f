//! Feeds the registration agent from provisioning: on every new routing snapshot, the users
//! that should hold a binding at their PBX, with their SIP passwords opened.
//!
//! Passwords are opened here, in the daemon, because only it holds the password key; the
//! gateway sees plain credentials and never the database.

use std::sync::Arc;

use teamsgw_gateway::client::ClientHandle;
use teamsgw_gateway::registration::{Registrar, Registration};
use teamsgw_sip::transport::Transport;
use teamsgw_store::{PasswordKey, RoutingSnapshot, password_context};
use tokio::sync::watch;

/// The bindings `snapshot` asks for. Users whose password cannot be opened (a different key)
/// are left out and counted in the returned number.
pub fn wanted(snapshot: &RoutingSnapshot, key: Option<&PasswordKey>) -> (Vec<Registration>, usize) {
    let mut out = Vec::with_capacity(snapshot.users());
    let mut unreadable = 0;
    for user in snapshot.all_users() {
        let Some(pbx) = snapshot.pbx(&user.pbx_id) else {
            continue;
        };
        let password =
            match key.map(|k| k.open(&user.password_sealed, &password_context(&user.upn))) {
                Some(Ok(p)) => p,
                _ => {
                    unreadable += 1;
                    continue;
                }
            };
        let transport = match pbx.transport.as_str() {
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => Transport::Udp,
        };
        out.push(Registration {
            upn: user.upn.clone(),
            enterprise: snapshot
                .enterprise_name(&user.enterprise_id)
                .unwrap_or("?")
                .to_owned(),
            extension: user.extension.clone(),
            domain: pbx.domain.clone(),
            registrar: Registrar::parse(pbx.proxy.as_deref().unwrap_or(&pbx.domain), transport),
            auth_user: user.auth_user.clone(),
            password,
            contact_token: user.contact_token.clone(),
            expires: pbx.expires,
            enabled: user.enabled,
        });
    }
    (out, unreadable)
}

/// Hands every new snapshot's bindings to the agent until the daemon stops.
pub async fn follow(
    mut snapshots: watch::Receiver<Option<Arc<RoutingSnapshot>>>,
    client: ClientHandle,
    key: Option<PasswordKey>,
) {
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        if let Some(snapshot) = snapshot {
            let (users, unreadable) = wanted(&snapshot, key.as_ref());
            if unreadable > 0 {
                tracing::error!(
                    users = unreadable,
                    "cannot open the SIP passwords of some users with database.password_key; they are not registered"
                );
            }
            tracing::info!(
                users = users.len(),
                "registration agent follows the new snapshot"
            );
            client.sync(users).await;
        }
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}
