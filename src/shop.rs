//! `tillmesh shop …`: a shop's secrets and roster on disk, and the credentials file each till runs
//! with.
//!
//! `SHOP/shop.json` holds the shop key and HQ's signing key (keep it safe: whoever has it can add
//! tills and settle payments); `SHOP/roster.json` the signed roster. `B.till` gives till B its
//! own identity, its signed roster entry, the shop key, HQ's public key and the shop's settings.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tillmesh_core::{Currency, HqSigningKey, Roster, RosterEntry, SignedRosterEntry, TillCode, Timestamp};
use tillmesh_net::Keypair;

const SHOP_FORMAT: &str = "tillmesh-shop/1";
const TILL_FORMAT: &str = "tillmesh-till/1";

/// `SHOP/shop.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ShopFile {
    format: String,
    #[serde(with = "hex::serde")]
    pub(crate) shop_key: [u8; 32],
    #[serde(with = "hex::serde")]
    hq_secret_key: [u8; 32],
    /// The HQ node's libp2p identity (its device key, not its signing key).
    #[serde(with = "hex::serde")]
    hq_identity: [u8; 32],
    pub(crate) currency: Currency,
    pub(crate) tax_rate_bps: u32,
}

impl ShopFile {
    pub(crate) fn hq(&self) -> HqSigningKey {
        HqSigningKey::from_bytes(&self.hq_secret_key)
    }

    /// HQ's public key.
    pub(crate) fn hq_public_key(&self) -> tillmesh_core::HqPublicKey {
        self.hq().public_key()
    }

    /// The HQ node's libp2p identity.
    pub(crate) fn hq_keypair(&self) -> anyhow::Result<Keypair> {
        Keypair::ed25519_from_bytes(self.hq_identity).context("the shop file holds an invalid HQ identity")
    }
}

/// A till's credentials file (`B.till`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TillCredentials {
    format: String,
    pub(crate) till_code: TillCode,
    #[serde(with = "hex::serde")]
    pub(crate) shop_key: [u8; 32],
    pub(crate) hq_public_key: String,
    #[serde(with = "hex::serde")]
    identity: [u8; 32],
    pub(crate) entry: SignedRosterEntry,
    pub(crate) roster: Vec<SignedRosterEntry>,
    pub(crate) currency: Currency,
    pub(crate) tax_rate_bps: u32,
}

impl TillCredentials {
    /// The till's libp2p identity.
    pub(crate) fn keypair(&self) -> anyhow::Result<Keypair> {
        Keypair::ed25519_from_bytes(self.identity).context("the credentials hold an invalid identity key")
    }

    /// Reads and checks a credentials file.
    pub(crate) fn read(path: &Path) -> anyhow::Result<TillCredentials> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let credentials: TillCredentials = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a till credentials file", path.display()))?;
        if credentials.format != TILL_FORMAT {
            bail!("{}: unsupported format {:?}", path.display(), credentials.format);
        }
        let hq = tillmesh_core::HqPublicKey::from_hex(&credentials.hq_public_key)?;
        let peer_id = credentials.keypair()?.public().to_peer_id().to_string();
        if credentials.entry.entry.peer_id != peer_id || !credentials.entry.verify(&hq) {
            bail!("{}: the roster entry is not HQ's entry for this identity", path.display());
        }
        Ok(credentials)
    }
}

fn random_key() -> anyhow::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|error| anyhow::anyhow!("no secure random source: {error}"))?;
    Ok(key)
}

fn now() -> Timestamp {
    use tillmesh_core::Clock;
    tillmesh_node::SystemClock.now()
}

/// Writes a secret file readable by its owner only, refusing to overwrite one.
fn write_new_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (does it exist already?)", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

pub(crate) fn read_shop(dir: &Path) -> anyhow::Result<(ShopFile, Vec<SignedRosterEntry>)> {
    let path = dir.join("shop.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let shop: ShopFile =
        serde_json::from_str(&text).with_context(|| format!("{} is not a shop file", path.display()))?;
    if shop.format != SHOP_FORMAT {
        bail!("{}: unsupported format {:?}", path.display(), shop.format);
    }
    let roster_path = dir.join("roster.json");
    let roster = std::fs::read_to_string(&roster_path)
        .with_context(|| format!("cannot read {}", roster_path.display()))?;
    let roster = serde_json::from_str(&roster)
        .with_context(|| format!("{} is not a roster", roster_path.display()))?;
    Ok((shop, roster))
}

fn write_roster(dir: &Path, roster: &[SignedRosterEntry]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("roster.json");
    let temporary = dir.join("roster.json.tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
    file.write_all(serde_json::to_string_pretty(roster)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `tillmesh shop init`: the shop key, HQ's signing key, HQ's node identity and a roster holding
/// the HQ node.
pub(crate) fn init(dir: &Path, currency: Currency, tax_rate_bps: u32) -> anyhow::Result<()> {
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let shop = ShopFile {
        format: SHOP_FORMAT.into(),
        shop_key: random_key()?,
        hq_secret_key: random_key()?,
        hq_identity: random_key()?,
        currency,
        tax_rate_bps,
    };
    let hq_entry = shop.hq().sign_roster(RosterEntry {
        peer_id: shop.hq_keypair()?.public().to_peer_id().to_string(),
        till_code: TillCode::parse(tillmesh_core::roster::HQ_CODE)?,
        revoked: false,
        version: 1,
        issued_at: now(),
    });
    write_new_secret(&dir.join("shop.json"), &serde_json::to_string_pretty(&shop)?)?;
    write_roster(dir, &[hq_entry])?;
    println!("shop created in {}", dir.display());
    println!("HQ public key {}", shop.hq().public_key().to_hex());
    Ok(())
}

/// `tillmesh shop add-till`: a new identity for the till, its signed roster entry, and its
/// credentials file.
pub(crate) fn add_till(dir: &Path, code: TillCode, out: &Path, reuse: bool) -> anyhow::Result<()> {
    let (shop, entries) = read_shop(dir)?;
    let hq = shop.hq();
    let mut roster = Roster::new();
    for entry in entries {
        roster.merge(entry, &hq.public_key())?;
    }
    // A code is never reissued by accident: orders numbered by its earlier till (revoked or
    // not) exist, and a new till counting from 1 would number orders the same.
    if let Some(earlier) = roster.entries().map(|signed| &signed.entry).find(|entry| entry.till_code == code)
    {
        if !reuse {
            anyhow::bail!(
                "till code {code} was used before (peer {}{}); codes are never reissued: pick another \
                 code, or pass --reuse to give it to a new till that continues {code}'s numbering",
                earlier.peer_id,
                if earlier.revoked { ", revoked" } else { "" }
            );
        }
        eprintln!(
            "warning: reusing till code {code}: start the new till connected to the shop before it takes \
             orders, so that it continues past the last {code} number it sees"
        );
    }
    let identity = random_key()?;
    let peer_id = Keypair::ed25519_from_bytes(identity)?.public().to_peer_id().to_string();
    let entry =
        RosterEntry { peer_id, till_code: code.clone(), revoked: false, version: 1, issued_at: now() };
    roster.check_code_free(&entry)?;
    let signed = hq.sign_roster(entry);
    roster.merge(signed.clone(), &hq.public_key())?;
    let all: Vec<SignedRosterEntry> = roster.entries().cloned().collect();
    let credentials = TillCredentials {
        format: TILL_FORMAT.into(),
        till_code: code.clone(),
        shop_key: shop.shop_key,
        hq_public_key: hq.public_key().to_hex(),
        identity,
        entry: signed.clone(),
        roster: all.clone(),
        currency: shop.currency,
        tax_rate_bps: shop.tax_rate_bps,
    };
    write_new_secret(out, &serde_json::to_string_pretty(&credentials)?)?;
    write_roster(dir, &all)?;
    println!("till {code} added: peer id {}, credentials in {}", signed.entry.peer_id, out.display());
    Ok(())
}

/// `tillmesh shop revoke-till`: a newer, revoked entry for the till; printed as JSON for
/// `tillmesh roster apply` on any running node.
pub(crate) fn revoke_till(dir: &Path, code: TillCode, out: Option<PathBuf>) -> anyhow::Result<()> {
    let (shop, entries) = read_shop(dir)?;
    let hq = shop.hq();
    let mut roster = Roster::new();
    for entry in entries {
        roster.merge(entry, &hq.public_key())?;
    }
    let Some(current) = roster.holder_of(&code).cloned() else {
        bail!("no active till {code} on the roster");
    };
    let revoked = hq.sign_roster(RosterEntry {
        revoked: true,
        version: current.version + 1,
        issued_at: now(),
        ..current
    });
    roster.merge(revoked.clone(), &hq.public_key())?;
    write_roster(dir, &roster.entries().cloned().collect::<Vec<_>>())?;
    let json = serde_json::to_string_pretty(&revoked)?;
    match out {
        Some(path) => {
            std::fs::write(&path, &json).with_context(|| format!("cannot write {}", path.display()))?;
            println!("till {code} revoked; apply {} to any running till", path.display());
        }
        None => println!("{json}"),
    }
    Ok(())
}
