//! `tillmesh`: run a till, and talk to a running till from the command line.
//!
//! Run `tillmesh --help` (and `tillmesh <command> --help`) for every flag; docs/API.md has
//! the HTTP API the client commands use.

mod client;
mod demo;
mod menu_csv;
mod run_till;
mod shop;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tillmesh_core::{Currency, OrderStatus, PaymentMethod, PaymentStatus, TillCode};
use uuid::Uuid;

/// jemalloc, with the options compiled into it (`.cargo/config.toml`): glibc's malloc took about
/// a fifth of the CPU of HQ's ingest and of a catch-up, which allocate and free many small
/// buffers from many threads (see docs/ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "tillmesh",
    version,
    about = "Restaurant tills that keep selling when the internet is down."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system here: HQ, three tills and a legacy REST client on 127.0.0.1.
    ///
    /// Real nodes in one process (real libp2p, real sled stores in a temporary directory, each
    /// with its HTTP API): orders on every till, one till cut off the network while the same
    /// order is edited on several tills and it takes a payment offline, the till back, HQ
    /// settling payments (declining one), the legacy client sending orders and receiving the
    /// tills'. Ends with a table of what every node holds and of the settlements as every node
    /// sees them; exits non-zero with the reason if any check fails.
    Demo(DemoArgs),
    /// Run a till: its durable store and its local HTTP API.
    Till(TillArgs),
    /// Run the HQ node (a peer that alone signs payment settlements), or settle a payment.
    Hq(Box<HqArgs>),
    /// Create, list and show orders on a running till.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Show a running till's documents and sync state.
    Status(ClientArgs),
    /// Create a shop and manage its roster of tills.
    #[command(subcommand)]
    Shop(ShopCommand),
    /// Hand a running till a signed roster entry (e.g. a revocation); it passes it on.
    #[command(subcommand)]
    Roster(RosterCommand),
    /// The shop's menu: what the tills' screens sell, with HQ's signed prices.
    #[command(subcommand)]
    Menu(MenuCommand),
}

#[derive(Debug, Subcommand)]
enum MenuCommand {
    /// Write the shop's whole menu on HQ from a CSV file; every till gets it.
    ///
    /// The file's first line names the columns, in any order: sku,name,category,price,tax_class,available
    /// (e.g. `SOUP,Tomato soup,Soups,4.50,reduced,true`). Prices are in the shop's currency with
    /// at most two decimals; available is true or false (yes/no, 1/0); quote a field holding a
    /// comma ("Soup, large"). Every error is reported by line and column and nothing is sent.
    /// Items not in the file are marked unavailable; price and availability changes are signed
    /// by HQ.
    Import {
        /// The shop's directory (from `tillmesh shop init`): the menu's currency, and HQ's public
        /// key to check that --hq is this shop's HQ.
        #[arg(long, value_name = "SHOP")]
        shop: PathBuf,
        /// The menu, as CSV.
        #[arg(value_name = "MENU.CSV")]
        file: PathBuf,
        /// Base URL of the HQ node's HTTP API.
        #[arg(long, value_name = "URL", env = "TILLMESH_HQ")]
        hq: String,
        /// HQ's admin token file (`admin-token` in HQ's data directory).
        #[arg(long, value_name = "FILE", env = "TILLMESH_ADMIN_TOKEN_FILE")]
        admin_token_file: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `tillmesh demo`.
#[derive(Debug, Args)]
struct DemoArgs {
    /// Leave the nodes running after the demo, print how to reach each (HTTP, CLI, the legacy
    /// REST API) and stop them on ctrl-c.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Subcommand)]
enum ShopCommand {
    /// Create a shop: shop key, HQ identity, empty roster (in DIR/shop.json and DIR/roster.json).
    Init {
        /// The shop's directory (created).
        #[arg(long, value_name = "SHOP")]
        dir: PathBuf,
        /// The shop's currency (ISO 4217).
        #[arg(long, default_value = "USD")]
        currency: Currency,
        /// The shop's tax rate in basis points (825 = 8.25 %).
        #[arg(long, default_value_t = 0)]
        tax_rate_bps: u32,
    },
    /// Add a till: a new identity and its HQ-signed roster entry, written to one credentials file.
    AddTill {
        /// The shop's directory.
        #[arg(long, value_name = "SHOP")]
        dir: PathBuf,
        /// The till's code (unique among the shop's active tills).
        #[arg(long)]
        code: TillCode,
        /// Where to write the credentials (refuses to overwrite).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Give a code used before (revoked) to a new till: it continues that code's numbering
        /// past the highest number it sees from the shop.
        #[arg(long)]
        reuse: bool,
    },
    /// Revoke a till: a newer, revoked roster entry; apply it to any running till with `tillmesh
    /// roster apply` and every peer disconnects the till.
    RevokeTill {
        /// The shop's directory.
        #[arg(long, value_name = "SHOP")]
        dir: PathBuf,
        /// The till's code.
        #[arg(long)]
        code: TillCode,
        /// Write the signed revocation here instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum RosterCommand {
    /// Send a signed roster entry (JSON file) to a running till.
    Apply {
        /// The signed entry, as `tillmesh shop revoke-till` writes it.
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
struct TillArgs {
    /// Directory of the till's store (created on first start).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The till's credentials (from `tillmesh shop add-till`): joins the shop's mesh.
    /// Without them the till runs standalone.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// The till's code in its shop: 1-8 letters or digits, starting with a letter (taken from
    /// the credentials when given).
    #[arg(long, value_name = "CODE", required_unless_present = "credentials")]
    code: Option<TillCode>,
    /// The shop's currency (ISO 4217; taken from the credentials when given).
    #[arg(long, default_value = "USD", conflicts_with = "credentials")]
    currency: Currency,
    /// The shop's tax rate in basis points (825 = 8.25 %; taken from the credentials when given).
    #[arg(long, default_value_t = 0, conflicts_with = "credentials")]
    tax_rate_bps: u32,
    /// A host name the till's HTTP API answers for besides localhost and its IP addresses
    /// (`till-a.shop.lan`); repeatable. Other names are refused (DNS rebinding).
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    #[command(flatten)]
    node: NodeArgs,
}

/// What every node (till or HQ) takes: its HTTP API and how it meets its peers.
#[derive(Debug, Args)]
struct NodeArgs {
    /// Address of the local HTTP API (port 0 picks a free port; the chosen one is printed).
    /// Default 127.0.0.1:8080; for `tillmesh hq` with SERVER_PORT alone, 0.0.0.0:SERVER_PORT.
    #[arg(long, value_name = "IP:PORT")]
    http: Option<SocketAddr>,
    /// Where to listen for peers (libp2p multiaddr); repeatable. Needs a shop (credentials).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<tillmesh_net::Multiaddr>,
    /// A peer to dial and keep re-dialing; repeatable. Needs a shop (credentials).
    #[arg(long, value_name = "MULTIADDR")]
    peer: Vec<tillmesh_net::Multiaddr>,
    /// Discover peers on the LAN with mDNS (not on loopback). Needs a shop (credentials).
    #[arg(long)]
    mdns: bool,
    /// How often to reconcile with every peer, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    sync_interval_ms: u64,
}

/// `tillmesh hq`: run the HQ node, or act on a running one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct HqArgs {
    #[command(subcommand)]
    command: Option<HqCommand>,
    /// The shop's directory (from `tillmesh shop init`): HQ's keys and the roster.
    #[arg(long, value_name = "SHOP", required = true)]
    shop: Option<PathBuf>,
    /// Directory of HQ's store (created on first start).
    #[arg(long, value_name = "DIR", required = true)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Port of the HTTP API, replacing --http's port (the seed's SERVER_PORT). Without --http,
    /// HQ listens on every interface (0.0.0.0), as the original server did, so registers on
    /// the LAN reach it.
    #[arg(long, value_name = "PORT", env = "SERVER_PORT")]
    port: Option<u16>,
    /// A web origin (`https://pos.example.com`) whose pages may call the legacy REST API from a
    /// browser (CORS); repeatable. None by default.
    #[arg(long, value_name = "ORIGIN")]
    cors_origin: Vec<String>,
    /// How legacy REST clients authenticate: `token` (a device token on every request) or
    /// `open` (a LAN-only migration mode for clients without a token: a request without one is
    /// admitted as the deviceId it names — anyone reaching HQ can write as any device).
    #[arg(long, value_enum, default_value_t = LegacyAuthArg::Token)]
    legacy_auth: LegacyAuthArg,
    /// How far ahead of HQ's clock a legacy record's createdAt/updatedAt may be, in
    /// milliseconds (a register whose clock runs fast); later ones, and any before 2000, are
    /// refused.
    #[arg(long, default_value_t = tillmesh_hq::CLOCK_SKEW_MAX_MS)]
    clock_skew_max_ms: i64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key), for an HQ reached over the
    /// internet without a proxy in front.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
}

/// `--legacy-auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LegacyAuthArg {
    /// Device tokens required.
    Token,
    /// Clients without a token admitted by deviceId (LAN only).
    Open,
}

/// Where HQ keeps its legacy records: sled in its data directory, or PostgreSQL.
#[derive(Debug, Args)]
struct DatabaseArgs {
    /// PostgreSQL for HQ's records (`postgres://user@host:5432/db`; the seed's
    /// `jdbc:postgresql://…` works too). Without it: sled in --data-dir.
    #[arg(long, value_name = "URL", env = "DATABASE_URL")]
    database_url: Option<String>,
    /// PostgreSQL user, overriding the URL's.
    #[arg(long, value_name = "USER", env = "DATABASE_USER", requires = "database_url")]
    database_user: Option<String>,
    /// PostgreSQL password, overriding the URL's.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "DATABASE_PASSWORD",
        hide_env_values = true,
        requires = "database_url"
    )]
    database_password: Option<String>,
}

#[derive(Debug, Subcommand)]
enum HqCommand {
    /// Settle an order's payment with HQ's signature; every till shows it as confirmed.
    Settle {
        /// Base URL of the HQ node's HTTP API.
        #[arg(long, value_name = "URL", env = "TILLMESH_HQ")]
        hq: String,
        /// The order's id.
        #[arg(long, value_name = "ID")]
        order: Uuid,
        /// CAPTURED, DECLINED or REFUNDED.
        #[arg(long)]
        status: PaymentStatus,
        /// HQ's admin token file (`admin-token` in HQ's data directory).
        #[arg(long, value_name = "FILE", env = "TILLMESH_ADMIN_TOKEN_FILE")]
        admin_token_file: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Manage legacy REST devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// HQ's conflict report: REST field conflicts and tills' claims contrary to HQ's settlement.
    Conflicts {
        /// Base URL of the HQ node's HTTP API.
        #[arg(long, value_name = "URL", env = "TILLMESH_HQ")]
        hq: String,
        /// HQ's admin token file (`admin-token` in HQ's data directory).
        #[arg(long, value_name = "FILE")]
        admin_token_file: PathBuf,
        /// Most entries, newest first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Register a legacy device and print its new bearer token (one line). Works while HQ is
    /// stopped; a running HQ with sled holds its store, so use `POST /api/hq/devices` then.
    Add {
        /// HQ's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
        /// The device's id, as it sends it in `deviceId`.
        #[arg(long, value_name = "ID")]
        device_id: String,
    },
    /// List the legacy devices of a running HQ: id, when its token was issued, revoked or not.
    List {
        /// Base URL of the HQ node's HTTP API.
        #[arg(long, value_name = "URL", env = "TILLMESH_HQ")]
        hq: String,
        /// HQ's admin token file (`admin-token` in HQ's data directory).
        #[arg(long, value_name = "FILE")]
        admin_token_file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a legacy device's token on a running HQ: its requests are refused from now on
    /// (`add` it again for a new token).
    Revoke {
        /// Base URL of the HQ node's HTTP API.
        #[arg(long, value_name = "URL", env = "TILLMESH_HQ")]
        hq: String,
        /// HQ's admin token file (`admin-token` in HQ's data directory).
        #[arg(long, value_name = "FILE")]
        admin_token_file: PathBuf,
        /// The device's id.
        #[arg(long, value_name = "ID")]
        device_id: String,
        /// Print JSON instead of a line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// Base URL of the till's HTTP API.
    #[arg(long, value_name = "URL", env = "TILLMESH_TILL", default_value = "http://127.0.0.1:8080")]
    till: String,
    /// HQ's admin token file (`admin-token` in HQ's data directory): HQ's node API needs it.
    #[arg(long, value_name = "FILE", env = "TILLMESH_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum OrderCommand {
    /// Create an order.
    New {
        #[command(flatten)]
        client: ClientArgs,
        /// An item as SKU:NAME:QTY:PRICE (e.g. 'SOUP:Tomato soup:2:4.50', or a weight: 'BRIE:Brie:0.25:24.90'); repeat for more.
        #[arg(long = "item", value_name = "SKU:NAME:QTY:PRICE", required = true)]
        items: Vec<String>,
        /// Notes for the kitchen.
        #[arg(long, default_value = "")]
        notes: String,
        /// Idempotency key: sending the same one again returns the first order.
        #[arg(long, value_name = "UUID")]
        local_id: Option<Uuid>,
    },
    /// List orders, most recently updated first.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Only orders in this status (OPEN, SENT, READY, SERVED, CLOSED, VOIDED).
        #[arg(long)]
        status: Option<OrderStatus>,
        /// Only orders updated at or after this time (milliseconds since the epoch).
        #[arg(long, value_name = "MS")]
        since: Option<i64>,
        /// Rows per page (at most 500).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after a previous page (its nextCursor).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one order with its items and payments.
    Show {
        /// The order's id.
        id: Uuid,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Move an order forward (SENT, READY, SERVED, CLOSED) or void it (VOIDED).
    Advance {
        /// The order's id.
        id: Uuid,
        /// The new status.
        #[arg(long)]
        status: OrderStatus,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Record a payment taken for an order (the till's claim until HQ settles).
    Pay {
        /// The order's id.
        id: Uuid,
        /// CASH, CARD, MOBILE, VOUCHER or OTHER.
        #[arg(long)]
        method: PaymentMethod,
        /// Amount (default: the order total).
        #[arg(long)]
        amount: Option<tillmesh_core::Amount>,
        /// Last four digits of the card.
        #[arg(long)]
        card_last4: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(DemoArgs { keep }) => demo::run(keep).await,
            Command::Till(args) => run_till::till(args).await,
            Command::Hq(args) => match *args {
                HqArgs {
                    command: Some(HqCommand::Settle { hq, order, status, admin_token_file, json }),
                    ..
                } => client::settle(ClientArgs { till: hq, admin_token_file, json }, order, status).await,
                HqArgs {
                    command: Some(HqCommand::Device(DeviceCommand::Add { data_dir, database, device_id })),
                    ..
                } => run_till::device_add(&data_dir, &database, &device_id).await,
                HqArgs {
                    command: Some(HqCommand::Device(DeviceCommand::List { hq, admin_token_file, json })), ..
                } => client::devices(ClientArgs { till: hq, admin_token_file: Some(admin_token_file), json }).await,
                HqArgs {
                    command:
                        Some(HqCommand::Device(DeviceCommand::Revoke { hq, admin_token_file, device_id, json })),
                    ..
                } => {
                    let args = ClientArgs { till: hq, admin_token_file: Some(admin_token_file), json };
                    client::revoke_device(args, &device_id).await
                }
                HqArgs {
                    command: Some(HqCommand::Conflicts { hq, admin_token_file, limit, json }), ..
                } => {
                    let args = ClientArgs { till: hq, admin_token_file: Some(admin_token_file), json };
                    client::conflicts(args, limit).await
                }
                args => run_till::hq(args).await,
            },
            Command::Order(command) => client::order(command).await,
            Command::Status(args) => client::status(args).await,
            Command::Shop(ShopCommand::Init { dir, currency, tax_rate_bps }) => {
                shop::init(&dir, currency, tax_rate_bps)
            }
            Command::Shop(ShopCommand::AddTill { dir, code, out, reuse }) => {
                shop::add_till(&dir, code, &out, reuse)
            }
            Command::Shop(ShopCommand::RevokeTill { dir, code, out }) => shop::revoke_till(&dir, code, out),
            Command::Roster(RosterCommand::Apply { file, client }) => {
                client::apply_roster(&file, client).await
            }
            Command::Menu(MenuCommand::Import { shop, file, hq, admin_token_file, json }) => {
                client::menu_import(&shop, &file, ClientArgs { till: hq, admin_token_file, json }).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
