//! `tillmesh till` and `tillmesh hq`: open the store, join the shop's mesh (in a shop), serve the
//! HTTP API, stop cleanly on SIGTERM or ctrl-c.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tillmesh_core::{HqPublicKey, SignedRosterEntry, TillCode};
use tillmesh_hq::{Access, Hq, LegacyAuth, PgRecords, RecordStore, SledRecords};
use tillmesh_net::{Keypair, NetConfig};
use tillmesh_node::{Mesh, MeshConfig, SystemClock, Till, TillConfig};
use tillmesh_store::{Store, StoreOptions};
use tracing_subscriber::EnvFilter;

use crate::shop::{TillCredentials, read_shop};
use crate::{DatabaseArgs, HqArgs, LegacyAuthArg, NodeArgs, TillArgs};

/// How long to wait for the peer listener's address before starting anyway.
const LISTEN_WAIT_MS: u64 = 5_000;

/// The file in HQ's data directory that holds the admin token.
const ADMIN_TOKEN_FILE: &str = "admin-token";

/// What a node serves besides the till's API.
enum Role {
    /// A till: the till's API only.
    Till,
    /// HQ: the legacy REST API too, with its records in sled or PostgreSQL.
    Hq {
        /// PostgreSQL for the records; sled without it.
        database: Option<Box<tillmesh_hq::PgConnectOptions>>,
        /// How legacy clients authenticate.
        legacy_auth: LegacyAuth,
        /// Web origins allowed to call the legacy API (CORS).
        cors_origins: Vec<reqwest::header::HeaderValue>,
        /// How far ahead of HQ's clock legacy records' times may be.
        clock_skew_max_ms: i64,
        /// HTTPS, when given a certificate.
        tls: Option<Arc<tillmesh_node::http::TlsServerConfig>>,
    },
}

/// Where the HTTP API listens unless told otherwise.
const DEFAULT_HTTP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// How a node in a shop joins the mesh.
struct Membership {
    keypair: Keypair,
    shop_key: [u8; 32],
    hq: HqPublicKey,
    own_entry: SignedRosterEntry,
    roster: Vec<SignedRosterEntry>,
}

/// `tillmesh till`: standalone, or in a shop with credentials.
pub(crate) async fn till(args: TillArgs) -> anyhow::Result<()> {
    init_logging("info");
    raise_descriptor_limit();
    let credentials = args.credentials.as_deref().map(TillCredentials::read).transpose()?;
    let code = match (&credentials, args.code.clone()) {
        (Some(credentials), Some(code)) if code != credentials.till_code => {
            bail!("--code {code} does not match the credentials' till {}", credentials.till_code)
        }
        (Some(credentials), _) => credentials.till_code.clone(),
        (None, Some(code)) => code,
        (None, None) => bail!("give --code or --credentials"),
    };
    let mut config = TillConfig::new(args.data_dir.clone(), code);
    config.currency = args.currency;
    config.tax_rate_bps = args.tax_rate_bps;
    config.allowed_hosts = args.allow_host.clone();
    let membership = match credentials {
        Some(credentials) => {
            config.currency = credentials.currency;
            config.tax_rate_bps = credentials.tax_rate_bps;
            let hq = HqPublicKey::from_hex(&credentials.hq_public_key)?;
            config.hq = Some(hq);
            Some(Membership {
                keypair: credentials.keypair()?,
                shop_key: credentials.shop_key,
                hq,
                own_entry: credentials.entry,
                roster: credentials.roster,
            })
        }
        None => {
            if !args.node.listen.is_empty() || !args.node.peer.is_empty() || args.node.mdns {
                bail!(
                    "--listen, --peer and --mdns need --credentials (a till joins a shop's mesh with them)"
                );
            }
            None
        }
    };
    run(config, membership, &args.node, Role::Till).await
}

/// `tillmesh hq`: the HQ node, with HQ's signing key from the shop directory.
pub(crate) async fn hq(args: HqArgs) -> anyhow::Result<()> {
    init_logging("info");
    raise_descriptor_limit();
    let (Some(shop_dir), Some(data_dir)) = (args.shop.as_deref(), args.data_dir.clone()) else {
        bail!("give --shop and --data-dir");
    };
    let (shop, roster) = read_shop(shop_dir)?;
    let signing = shop.hq();
    let keypair = shop.hq_keypair()?;
    let peer_id = keypair.public().to_peer_id().to_string();
    let own_entry = own_entry(shop_dir, &roster, &peer_id)?;
    let mut config = TillConfig::new(data_dir, TillCode::parse(tillmesh_core::roster::HQ_CODE)?);
    config.currency = shop.currency;
    config.tax_rate_bps = shop.tax_rate_bps;
    config.set_hq(signing.clone());
    let membership =
        Membership { keypair, shop_key: shop.shop_key, hq: signing.public_key(), own_entry, roster };
    let database = database_options(&args.database)?;
    let mut node = args.node;
    node.http = Some(match (node.http, args.port) {
        (Some(mut http), Some(port)) => {
            http.set_port(port);
            http
        }
        // SERVER_PORT alone: every interface, like the original server, so registers on the
        // LAN reach HQ.
        (None, Some(port)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        (http, None) => http.unwrap_or(DEFAULT_HTTP),
    });
    let cors_origins = args
        .cors_origin
        .iter()
        .map(|origin| {
            reqwest::header::HeaderValue::from_str(origin)
                .with_context(|| format!("--cors-origin {origin:?} is not a header value"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let legacy_auth = match args.legacy_auth {
        LegacyAuthArg::Token => LegacyAuth::Token,
        LegacyAuthArg::Open => LegacyAuth::Open,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(certificate), Some(key)) => Some(
            tillmesh_node::http::tls_config(certificate, key)
                .context("cannot serve HTTPS with --tls-cert/--tls-key")?,
        ),
        _ => None,
    };
    let role = Role::Hq {
        database: database.map(Box::new),
        legacy_auth,
        cors_origins,
        clock_skew_max_ms: args.clock_skew_max_ms,
        tls,
    };
    run(config, Some(membership), &node, role).await
}

/// `tillmesh hq device add`: registers a legacy device and prints its token.
pub(crate) async fn device_add(
    data_dir: &Path,
    database: &DatabaseArgs,
    device_id: &str,
) -> anyhow::Result<()> {
    let now = tillmesh_core::Clock::now(&SystemClock);
    let token = match database_options(database)? {
        Some(options) => {
            let records = PgRecords::connect_with(options).await.context("cannot reach HQ's PostgreSQL")?;
            tillmesh_hq::service::add_device(&records, device_id, now).await?
        }
        None => {
            let store = Store::open(data_dir, StoreOptions { cache_bytes: 8 * 1024 * 1024, hq: None })
                .with_context(|| {
                    format!(
                        "cannot open HQ's store in {} (while HQ runs, use POST /api/hq/devices with its admin token)",
                        data_dir.display()
                    )
                })?;
            let records = SledRecords::open(store)?;
            tillmesh_hq::service::add_device(&records, device_id, now).await?
        }
    };
    println!("{token}");
    Ok(())
}

fn database_options(database: &DatabaseArgs) -> anyhow::Result<Option<tillmesh_hq::PgConnectOptions>> {
    database
        .database_url
        .as_deref()
        .map(|url| {
            tillmesh_hq::database_options(
                url,
                database.database_user.as_deref(),
                database.database_password.as_deref(),
            )
            .context("--database-url / DATABASE_URL is not a PostgreSQL URL")
        })
        .transpose()
}

/// HQ's admin token: read from the data directory, or made (and written, owner-only) on first
/// start.
fn admin_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_string()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).context("no randomness for the admin token")?;
    let token = format!("tma_{}", hex::encode(secret));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

fn own_entry(
    shop_dir: &Path,
    roster: &[SignedRosterEntry],
    peer_id: &str,
) -> anyhow::Result<SignedRosterEntry> {
    roster
        .iter()
        .find(|entry| entry.entry.peer_id == peer_id && !entry.entry.revoked)
        .cloned()
        .with_context(|| format!("{}: the roster has no active entry for the HQ node", shop_dir.display()))
}

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise.
/// Every connection costs a file descriptor: a node takes the hard limit the system allows
/// (raise it with `LimitNOFILE` in the service unit; see docs/OPERATIONS.md).
fn raise_descriptor_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(descriptors) => tracing::info!(descriptors, "file descriptor limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the file descriptor limit"),
    }
}

pub(crate) fn init_logging(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Fails only if a subscriber is already set: that one stays.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn run(
    config: TillConfig,
    membership: Option<Membership>,
    node: &NodeArgs,
    role: Role,
) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let till = Till::open(config, Arc::new(SystemClock))
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let mesh = match membership {
        Some(membership) => Some(join_mesh(&till, membership, node).await?),
        None => None,
    };
    let http = node.http.unwrap_or(DEFAULT_HTTP);
    let listener =
        tokio::net::TcpListener::bind(http).await.with_context(|| format!("cannot listen on {http}"))?;
    let address = listener.local_addr()?;
    // One line on stdout that scripts and tests read to find the node, once it is ready (for
    // HQ: records open, admin token written).
    let device = till.device_id().to_string();
    let scheme = if matches!(&role, Role::Hq { tls: Some(_), .. }) { "https" } else { "http" };
    let announce = move || {
        println!("till {device} listening on {scheme}://{address}");
        tracing::info!(%address, device, "node started");
    };
    // On SIGTERM or ctrl-c the mesh stops first, saving its sessions' sync states while the
    // store is open; then HTTP drains and the store closes.
    let shutdown = async move {
        shutdown_signal().await;
        if let Some(mesh) = mesh {
            mesh.stop().await;
        }
    };
    match role {
        Role::Till => {
            announce();
            tillmesh_node::http::serve(listener, till, shutdown).await?;
        }
        Role::Hq { database, legacy_auth, cors_origins, clock_skew_max_ms, tls } => {
            let mut access = Access::new(admin_token(&data_dir)?);
            access.legacy_auth = legacy_auth;
            access.cors_origins = cors_origins;
            access.clock_skew_max_ms = clock_skew_max_ms;
            if legacy_auth == LegacyAuth::Open {
                println!(
                    "hq legacy auth: open (LAN only: REST clients without a token are admitted by the deviceId they name)"
                );
                tracing::warn!(
                    "legacy auth is open: anyone reaching HQ can write as any device; keep HQ on the LAN"
                );
            }
            match database {
                None => {
                    let records = SledRecords::open(till.store().clone())?;
                    serve_hq(records, till, listener, &access, tls, announce, shutdown).await?;
                }
                Some(options) => {
                    let records =
                        PgRecords::connect_with(*options).await.context("cannot reach HQ's PostgreSQL")?;
                    serve_hq(records, till, listener, &access, tls, announce, shutdown).await?;
                }
            }
        }
    }
    tracing::info!("node stopped; store flushed");
    Ok(())
}

async fn serve_hq<S: RecordStore>(
    records: S,
    till: Till,
    listener: tokio::net::TcpListener,
    access: &Access,
    tls: Option<Arc<tillmesh_node::http::TlsServerConfig>>,
    announce: impl FnOnce(),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let hq = Hq::start(records, till, Arc::new(SystemClock), access);
    announce();
    hq.serve(listener, tls, shutdown).await?;
    Ok(())
}

async fn join_mesh(till: &Till, membership: Membership, node: &NodeArgs) -> anyhow::Result<Mesh> {
    let mut net = NetConfig::new(membership.keypair, membership.shop_key);
    net.listen = node.listen.clone();
    net.peers = node.peer.clone();
    net.mdns = node.mdns;
    let mesh = Mesh::start(
        till.clone(),
        MeshConfig {
            net,
            hq: membership.hq,
            own_entry: membership.own_entry,
            roster: membership.roster,
            sync_interval_ms: node.sync_interval_ms,
            held_frames_max: 16,
        },
    )
    .context("cannot join the shop's mesh")?;
    let mut listening = mesh.listening.clone();
    if !node.listen.is_empty() {
        let wait = listening.wait_for(|addresses| !addresses.is_empty());
        // Starting without a printed address is still useful (static peers dial out).
        let _ = tokio::time::timeout(Duration::from_millis(LISTEN_WAIT_MS), wait).await;
    }
    for address in listening.borrow().iter() {
        println!("till {} peer {address}/p2p/{}", till.device_id(), mesh.local_peer_id);
    }
    Ok(mesh)
}

/// Resolves on ctrl-c or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
