//! A whole shop in one process, for examples, benchmarks and tests on one machine: HQ's key, the
//! shop key, device identities and their signed roster entries, derived from a seed. Never use
//! it for a real shop: its keys are predictable (a real shop comes from `tillmesh shop init`).

use std::path::Path;
use std::sync::Arc;

use tillmesh_core::{Clock, HqSigningKey, RosterEntry, SignedRosterEntry, TillCode};
use tillmesh_net::{Keypair, Multiaddr, NetConfig, multiaddr::Protocol};

use crate::{Mesh, MeshConfig, MeshError, SystemClock, Till, TillConfig, TillError};

/// A shop whose secrets are derived from a seed.
#[derive(Debug)]
pub struct LocalShop {
    hq: HqSigningKey,
    shop_key: [u8; 32],
    devices: Vec<(Keypair, SignedRosterEntry)>,
    /// Tax rate of the shop's tills.
    pub tax_rate_bps: u32,
}

impl LocalShop {
    /// A shop with one device per till code, keys derived from `seed`.
    pub fn new(seed: u8, codes: &[&str]) -> Result<LocalShop, TillError> {
        let hq = HqSigningKey::from_bytes(&[seed; 32]);
        let mut devices = Vec::with_capacity(codes.len());
        for (n, code) in codes.iter().enumerate() {
            let mut secret = [seed; 32];
            secret[0] = n as u8 + 1;
            let keypair = Keypair::ed25519_from_bytes(secret)
                .map_err(|_| TillError::Internal { detail: "an ed25519 key from 32 bytes" })?;
            let till_code = TillCode::parse(code).map_err(tillmesh_core::EditError::from)?;
            let entry = hq.sign_roster(RosterEntry {
                peer_id: keypair.public().to_peer_id().to_string(),
                till_code,
                revoked: false,
                version: 1,
                issued_at: SystemClock.now(),
            });
            devices.push((keypair, entry));
        }
        Ok(LocalShop { hq, shop_key: [seed ^ 0x5a; 32], devices, tax_rate_bps: 825 })
    }

    /// HQ's signing key.
    pub fn hq(&self) -> &HqSigningKey {
        &self.hq
    }

    /// Opens device `n`'s till with its store under `dir/<code>`.
    pub fn till(&self, dir: &Path, n: usize) -> Result<Till, TillError> {
        let code = self.devices[n].1.entry.till_code.clone();
        let mut config = TillConfig::new(dir.join(code.as_str()), code);
        config.hq = Some(self.hq.public_key());
        config.tax_rate_bps = self.tax_rate_bps;
        Till::open(config, Arc::new(SystemClock))
    }

    /// Joins device `n`'s till to the mesh, listening on 127.0.0.1 and dialing `peers`;
    /// returns the mesh and its dialable address (with `/p2p/<peer id>`).
    pub async fn join(
        &self,
        till: &Till,
        n: usize,
        peers: Vec<Multiaddr>,
        sync_interval_ms: u64,
    ) -> Result<(Mesh, Multiaddr), MeshError> {
        let (keypair, entry) = &self.devices[n];
        let mut net = NetConfig::new(keypair.clone(), self.shop_key);
        net.listen =
            vec![Multiaddr::empty().with(Protocol::Ip4([127, 0, 0, 1].into())).with(Protocol::Tcp(0))];
        net.peers = peers;
        let mesh = Mesh::start(
            till.clone(),
            MeshConfig {
                net,
                hq: self.hq.public_key(),
                own_entry: entry.clone(),
                roster: self.devices.iter().map(|(_, entry)| entry.clone()).collect(),
                sync_interval_ms,
                held_frames_max: 16,
            },
        )?;
        let mut listening = mesh.listening.clone();
        listening
            .wait_for(|addresses| !addresses.is_empty())
            .await
            .map_err(|_| MeshError::Net(tillmesh_net::NetError::Stopped))?;
        let address = listening.borrow()[0].clone().with(Protocol::P2p(mesh.local_peer_id));
        Ok((mesh, address))
    }
}
