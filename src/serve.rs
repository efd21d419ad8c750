//! `plarail-twin serve`: its settings (flags, `PLARAIL_*` environment variables, a TOML config file, defaults,
//! in that order of precedence) and the server itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;

/// The HTTP server's address when none is given (`serve` and `edge`).
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// The log filter when none is given (`serve` and `edge`).
pub const DEFAULT_LOG: &str = "info,rumqttd=warn";

/// Flags of `serve`. Each can also come from a `PLARAIL_*` environment variable or the config file.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML config file holding any of the settings below by their flag names (`listen = "0.0.0.0:8080"`,
    /// `boards = { "192.168.100.107:80" = "127.0.0.1:19107" }`); flags and environment variables win over it.
    #[arg(long, env = "PLARAIL_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the HTTP server (page, WebSocket, API, sensor ingest) [default: 127.0.0.1:8080].
    #[arg(long, env = "PLARAIL_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address of the gRPC server (the 2021 Control and Speed services, and the v2 state feed)
    /// [default: 127.0.0.1:50051].
    #[arg(long, env = "PLARAIL_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// Layout file, or an embedded layout by name: chofufes2021, chofufes2023 [default: chofufes2021].
    #[arg(long, env = "PLARAIL_LAYOUT")]
    layout: Option<PathBuf>,
    /// Which track commands drive at start: the simulation (`sim`) or the real boards (`live`) [default: sim].
    #[arg(long, env = "PLARAIL_MODE", value_enum)]
    mode: Option<ModeArg>,
    /// Address of a real board, as NAME=HOST:PORT by board name or layout address (repeatable), e.g.
    /// `--board 192.168.100.107:80=127.0.0.1:19107`; a speed controller's the same way
    /// (`--board 192.168.100.150:1111=127.0.0.1:PORT`); for a sensor board, the IP address its reports come
    /// from (`--board sensors-sasazuka=10.0.0.7`).
    #[arg(long = "board", env = "PLARAIL_BOARDS", value_delimiter = ',', value_parser = parse_board)]
    boards: Vec<(String, String)>,
    /// Token operators send with their actions (live-mode toggle, emergency stop, reset) [default: none, and
    /// operator actions are refused].
    #[arg(long, env = "PLARAIL_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// Commands one visitor connection may send per second [default: 10].
    #[arg(long, env = "PLARAIL_RATE_PER_CONNECTION")]
    rate_per_connection: Option<f64>,
    /// Commands all connections from one address may send per second [default: 50].
    #[arg(long, env = "PLARAIL_RATE_PER_ADDRESS")]
    rate_per_address: Option<f64>,
    /// Origins allowed to open a WebSocket (repeatable) [default: any].
    #[arg(long = "origin", env = "PLARAIL_ORIGINS", value_delimiter = ',')]
    origins: Vec<String>,
    /// Directory of the journal (desired device states and command history, kept across restarts)
    /// [default: none, nothing kept].
    #[arg(long, env = "PLARAIL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Command history entries the journal keeps (older ones are dropped) [default: 200000].
    #[arg(long, env = "PLARAIL_HISTORY_KEEP")]
    history_keep: Option<u64>,
    /// Local UDP address WebRTC connections bind (repeatable; port 0: a fresh port per connection;
    /// `0.0.0.0:0`: every interface but loopback, whose addresses go into the answers as host candidates)
    /// [default: 0.0.0.0:0].
    #[arg(long = "webrtc-udp", env = "PLARAIL_WEBRTC_UDP", value_delimiter = ',')]
    webrtc_udp: Vec<SocketAddr>,
    /// Video sessions (WHEP viewers and WHIP publishers) one client address may have open at once; a phone's
    /// page uses two [default: 16].
    #[arg(long, env = "PLARAIL_VIDEO_SESSIONS_PER_ADDRESS")]
    video_sessions_per_address: Option<usize>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter [default: info, the embedded MQTT
    /// broker's own at warn].
    #[arg(long, env = "PLARAIL_LOG")]
    log: Option<String>,
    /// The firmware the virtual 2023 boards run in sim mode: 2023 (the festival build: never reconnects) or 2025
    /// (reconnects every 5 s, asks no state again) [default: 2023].
    #[arg(long, env = "PLARAIL_FIRMWARE", value_parser = ["2023", "2025"])]
    firmware: Option<String>,
    /// How the layout is run at start: manual (visitors and the operator), auto (every train automatic,
    /// visitors' commands refused) or mixed (automatic except where a visitor operates); the operator changes
    /// it at run time [default: manual].
    #[arg(long, env = "PLARAIL_OPERATION", value_parser = ["manual", "auto", "mixed"])]
    operation: Option<String>,
    /// The broker, as the on-site core: publish the track there and carry out the commands edges send; on a
    /// layout with 2023 boards also the real boards' broker, which live mode drives (their topics beside the
    /// track's).
    #[command(flatten)]
    broker: BrokerArgs,
}

/// How a role reaches the MQTT broker (`serve --broker` as the on-site core, `edge`).
#[derive(clap::Args, Default, Debug)]
pub struct BrokerArgs {
    /// The MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT (TLS); `serve` without one is one process, `edge`
    /// needs one. On a layout with 2023 boards `serve` drives the real boards on it in live mode; the virtual
    /// boards of sim mode always run on a broker embedded in the process (never beside the real ones).
    #[arg(long, env = "PLARAIL_BROKER")]
    pub broker: Option<String>,
    /// User name for the broker's login.
    #[arg(long, env = "PLARAIL_BROKER_USER")]
    pub broker_user: Option<String>,
    /// Password for the broker's login.
    #[arg(long, env = "PLARAIL_BROKER_PASSWORD", hide_env_values = true)]
    pub broker_password: Option<String>,
    /// PEM file of the CA that signed the broker's certificate (mqtts://) [default: the system's roots].
    #[arg(long, env = "PLARAIL_BROKER_CA")]
    pub broker_ca: Option<PathBuf>,
    /// Topic prefix of the track on the broker [default: plarail/<layout name>].
    #[arg(long, env = "PLARAIL_TOPICS")]
    pub topics: Option<String>,
}

impl BrokerArgs {
    /// The broker these flags name (`None` without `--broker`), with its login and CA.
    pub fn broker(&self) -> anyhow::Result<Option<gateway::broker::connect::Broker>> {
        let Some(url) = &self.broker else {
            anyhow::ensure!(
                self.broker_user.is_none() && self.broker_password.is_none() && self.broker_ca.is_none(),
                "--broker-user, --broker-password and --broker-ca need --broker"
            );
            return Ok(None);
        };
        let mut broker = gateway::broker::connect::Broker::parse(url).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
        broker.login = match (&self.broker_user, &self.broker_password) {
            (Some(user), password) => Some((user.clone(), password.clone().unwrap_or_default())),
            (None, None) => None,
            (None, Some(_)) => anyhow::bail!("--broker-password needs --broker-user"),
        };
        if let Some(ca) = &self.broker_ca {
            anyhow::ensure!(broker.tls, "--broker-ca is for an mqtts:// broker");
            anyhow::ensure!(ca.is_file(), "--broker-ca {}: no such file", ca.display());
        }
        broker.ca_file = self.broker_ca.clone();
        Ok(Some(broker))
    }

    /// These flags over the config file's broker settings (taken out of `file`; its CA's path relative to
    /// `base`), for `serve` and `edge` alike.
    pub fn over(self, file: &mut ConfigFile, base: &Path) -> BrokerArgs {
        BrokerArgs {
            broker: self.broker.or(file.broker.take()),
            broker_user: self.broker_user.or(file.broker_user.take()),
            broker_password: self.broker_password.or(file.broker_password.take()),
            broker_ca: self.broker_ca.or(file.broker_ca.take().map(|p| relative_to(base, p))),
            topics: self.topics.or(file.topics.take()),
        }
    }

    /// The topics under `--topics`, or the layout's default.
    pub fn topics(&self, layout: &str) -> anyhow::Result<gateway::broker::wire::Topics> {
        match &self.topics {
            Some(prefix) => gateway::broker::wire::Topics::new(prefix).map_err(|e| anyhow::anyhow!("--topics: {e}")),
            None => Ok(gateway::broker::wire::Topics::of_layout(layout)),
        }
    }
}

/// A path from the config file: relative to the file's folder `base`.
fn relative_to(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() { path } else { base.join(path) }
}

/// Which track commands drive at start.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    /// The simulation, through virtual boards.
    Sim,
    /// The real boards.
    Live,
}

/// The config file: the same settings as the flags, by their names (`edge` reads the same file, and refuses
/// the settings only `serve` has).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) grpc_listen: Option<SocketAddr>,
    pub(crate) layout: Option<PathBuf>,
    pub(crate) mode: Option<ModeArg>,
    pub(crate) boards: Option<BTreeMap<String, String>>,
    pub(crate) operator_token: Option<String>,
    pub(crate) rate_per_connection: Option<f64>,
    pub(crate) rate_per_address: Option<f64>,
    pub(crate) origins: Option<Vec<String>>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) history_keep: Option<u64>,
    pub(crate) webrtc_udp: Option<Vec<SocketAddr>>,
    pub(crate) video_sessions_per_address: Option<usize>,
    pub(crate) log: Option<String>,
    pub(crate) firmware: Option<String>,
    pub(crate) operation: Option<String>,
    pub(crate) broker: Option<String>,
    pub(crate) broker_user: Option<String>,
    pub(crate) broker_password: Option<String>,
    pub(crate) broker_ca: Option<PathBuf>,
    pub(crate) topics: Option<String>,
    /// `edge` only: the layout's name for the default topic prefix.
    pub(crate) layout_name: Option<String>,
    /// `edge` only: the core's HTTP address.
    pub(crate) core_url: Option<String>,
}

impl ConfigFile {
    /// The settings in this file that only `serve` has, by name.
    pub fn serve_only(&self) -> Vec<&'static str> {
        let set = [
            ("layout", self.layout.is_some()),
            ("mode", self.mode.is_some()),
            ("boards", self.boards.is_some()),
            ("operator_token", self.operator_token.is_some()),
            ("data_dir", self.data_dir.is_some()),
            ("history_keep", self.history_keep.is_some()),
            ("firmware", self.firmware.is_some()),
            ("operation", self.operation.is_some()),
        ];
        set.into_iter().filter(|(_, is)| *is).map(|(name, _)| name).collect()
    }

    /// The settings in this file that only `edge` has, by name.
    fn edge_only(&self) -> Vec<&'static str> {
        let set = [("layout_name", self.layout_name.is_some()), ("core_url", self.core_url.is_some())];
        set.into_iter().filter(|(_, is)| *is).map(|(name, _)| name).collect()
    }
}

/// Everything `serve` needs, merged from flags, environment, config file and defaults.
#[derive(Debug)]
pub struct Settings {
    listen: SocketAddr,
    grpc_listen: SocketAddr,
    layout: Option<PathBuf>,
    mode: ModeArg,
    boards: Vec<(String, String)>,
    operator_token: Option<String>,
    rate_per_connection: f64,
    rate_per_address: f64,
    origins: Vec<String>,
    data_dir: Option<PathBuf>,
    history_keep: u64,
    webrtc_udp: Vec<SocketAddr>,
    video_sessions_per_address: usize,
    log: String,
    firmware: hil::boards2023::firmware::Build,
    operation: sim::auto::Operation,
    broker: BrokerArgs,
}

impl ConfigFile {
    /// The config file at `path` (none: every setting unset) and the folder its relative paths start from.
    pub fn read(path: Option<&Path>) -> anyhow::Result<(ConfigFile, PathBuf)> {
        let Some(path) = path else { return Ok((ConfigFile::default(), PathBuf::new())) };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file: ConfigFile =
            toml::from_str(&text).with_context(|| format!("{} is not a valid config file", path.display()))?;
        Ok((file, path.parent().map(Path::to_path_buf).unwrap_or_default()))
    }
}

impl ServeArgs {
    /// Merges the flags (and environment) over the config file over the defaults.
    pub fn settings(self) -> anyhow::Result<Settings> {
        let (mut file, base) = ConfigFile::read(self.config.as_deref())?;
        let edge_only = file.edge_only();
        anyhow::ensure!(edge_only.is_empty(), "the config file: {} only for `edge`", edge_only.join(", "));
        let broker = self.broker.over(&mut file, &base);
        let relative = |p: PathBuf| relative_to(&base, p);
        let mut file_boards = Vec::new();
        for (name, addr) in file.boards.unwrap_or_default() {
            file_boards
                .push(parse_board(&format!("{name}={addr}")).map_err(|e| anyhow::anyhow!("config boards: {e}"))?);
        }
        Ok(Settings {
            listen: self.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN),
            grpc_listen: self.grpc_listen.or(file.grpc_listen).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 50051))),
            layout: self.layout.or(file.layout.map(relative)),
            mode: self.mode.or(file.mode).unwrap_or(ModeArg::Sim),
            boards: if self.boards.is_empty() { file_boards } else { self.boards },
            operator_token: self.operator_token.or(file.operator_token),
            rate_per_connection: self
                .rate_per_connection
                .or(file.rate_per_connection)
                .unwrap_or(gateway::limits::Limits::default().per_connection),
            rate_per_address: self
                .rate_per_address
                .or(file.rate_per_address)
                .unwrap_or(gateway::limits::Limits::default().per_address),
            origins: if self.origins.is_empty() { file.origins.unwrap_or_default() } else { self.origins },
            data_dir: self.data_dir.or(file.data_dir.map(relative)),
            history_keep: self.history_keep.or(file.history_keep).unwrap_or(gateway::journal::DEFAULT_KEEP),
            webrtc_udp: if self.webrtc_udp.is_empty() {
                file.webrtc_udp.unwrap_or_else(|| vec![SocketAddr::from(([0, 0, 0, 0], 0))])
            } else {
                self.webrtc_udp
            },
            video_sessions_per_address: self
                .video_sessions_per_address
                .or(file.video_sessions_per_address)
                .unwrap_or(video::SfuConfig::default().per_address),
            log: self.log.or(file.log).unwrap_or_else(|| DEFAULT_LOG.into()),
            firmware: match self.firmware.or(file.firmware).as_deref() {
                None | Some("2023") => hil::boards2023::firmware::Build::Festival2023,
                Some("2025") => hil::boards2023::firmware::Build::Reconnecting2025,
                Some(other) => anyhow::bail!("firmware `{other}`: 2023 or 2025"),
            },
            operation: match self.operation.or(file.operation) {
                Some(word) => word.parse().map_err(|e: String| anyhow::anyhow!(e))?,
                None => sim::auto::Operation::Manual,
            },
            broker,
        })
    }
}

/// The brokers of the layout's 2023 boards, on a layout that has MQTT boards: for the virtual boards one
/// embedded in this process on loopback (sim mode), and for the real ones `--broker`'s (live mode), if given.
async fn boards_brokers(
    layout: &sim::layout::Layout,
    broker: Option<&gateway::broker::connect::Broker>,
) -> anyhow::Result<(Option<hil::boards2023::link::BoardBroker>, Option<hil::boards2023::link::BoardBroker>)> {
    if !layout.boards.iter().any(|b| b.kind == sim::layout::BoardKind::Mqtt) {
        return Ok((None, None));
    }
    let embedded =
        hil::boards2023::embedded_broker::EmbeddedBroker::start().await.context("the embedded MQTT broker")?;
    tracing::info!("2023 boards: the virtual boards' embedded MQTT broker listens on {}", embedded.addr);
    let live = match broker {
        Some(b) => {
            let tls = b.tls().map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
            let (host, port, login) = (b.host.clone(), b.port, b.login.clone());
            tracing::info!("2023 boards: live mode drives the real boards on {}", b.url());
            Some(hil::boards2023::link::BoardBroker { host, port, login, tls, presence: None })
        }
        None => None,
    };
    Ok((Some(embedded.board_broker()), live))
}

/// `NAME=HOST:PORT` (or `NAME=IP`, a sensor board's sender): a board by name or layout address, and an address.
pub(crate) fn parse_board(s: &str) -> Result<(String, String), String> {
    let (name, addr) = s.split_once('=').ok_or_else(|| format!("`{s}` is not NAME=HOST:PORT"))?;
    let host_port = addr.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !host_port && addr.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("`{addr}` is not HOST:PORT (or, for a sensor board, an IP address)"));
    }
    Ok((name.to_string(), addr.to_string()))
}

/// Refuses a `--board` name that is neither a board's name nor its address in the layout.
pub(crate) fn known_board(layout: &sim::layout::Layout, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        layout.boards.iter().any(|b| b.name == name || b.address == name),
        "--board {name}: the layout has no board by that name or address"
    );
    Ok(())
}

/// Serves the twin with `settings` until Ctrl-C or SIGTERM.
pub fn serve(args: Settings) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).with_context(|| format!("--log {}", args.log))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();
    if let Some(token) = &args.operator_token {
        gateway::operator::usable_token(token).map_err(|e| anyhow::anyhow!("--operator-token: {e}"))?;
    }
    let layout_file = super::layout_file(args.layout.as_deref())?;
    let layout =
        std::sync::Arc::new(sim::layout::Layout::from_toml(&layout_file).with_context(|| match &args.layout {
            Some(p) => format!("{} is not a valid layout", p.display()),
            None => "the embedded 2021 layout".into(),
        })?);
    let broker = args.broker.broker()?;
    let topics = args.broker.topics(&layout.name)?;
    for (name, _) in &args.boards {
        known_board(&layout, name)?;
    }
    anyhow::ensure!(
        args.rate_per_connection > 0.0 && args.rate_per_address > 0.0,
        "the rate limits must be positive numbers"
    );
    let mode = if args.mode == ModeArg::Sim { sim::twin::Mode::Sim } else { sim::twin::Mode::Live };
    let journal = match &args.data_dir {
        Some(dir) => {
            let (journal, opened) = gateway::journal::Journal::open(dir)?;
            if let gateway::journal::Opened::Recovered { aside, reason } = opened {
                tracing::warn!(
                    "the journal in {} was damaged ({reason}): kept aside as {}; starting a new one, every device from \
                     the layout's initial state and no command history",
                    dir.display(),
                    aside.display()
                );
            }
            anyhow::ensure!(args.history_keep > 0, "--history-keep must be at least 1");
            Some(std::sync::Arc::new(journal.keep(args.history_keep).layout_toml(&layout_file)))
        }
        None => None,
    };
    let desired = match &journal {
        Some(j) => {
            let stored = j.device_states(&layout)?;
            let restored = stored.iter().filter(|s| s.is_some()).count();
            tracing::info!("journal: {restored} device states restored");
            Some(stored.iter().zip(&layout.devices).map(|(s, d)| s.unwrap_or(d.initial)).collect())
        }
        None => None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (boards2023, live2023) = runtime.block_on(boards_brokers(&layout, broker.as_ref()))?;
    runtime.block_on(async move {
        let live_boards: std::collections::HashMap<String, String> = args.boards.into_iter().collect();
        let setup = hil::track::Setup {
            live_boards: live_boards.clone(),
            mode,
            desired,
            boards2023,
            live2023,
            firmware2023: args.firmware,
            operation: args.operation,
            ..Default::default()
        };
        let track = hil::track::Track::start(layout.clone(), setup).await?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!(layout = %layout.name, mode = ?mode, "serving http://{}", listener.local_addr()?);
        let limits = gateway::limits::Limits {
            per_connection: args.rate_per_connection,
            per_address: args.rate_per_address,
            origins: args.origins,
        };
        let options = gateway::core::Options { operator_token: args.operator_token, limits, journal };
        let core = gateway::core::Core::start(track.clone(), options).await?;
        if let Some(broker) = &broker {
            gateway::broker::on_site::start(core.clone(), broker, topics, layout_file)
                .map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
            tracing::info!("on-site core: the track goes to the broker {}", broker.url());
        }
        let grpc = tokio::net::TcpListener::bind(args.grpc_listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.grpc_listen))?;
        tracing::info!("gRPC on {}", grpc.local_addr()?);
        let (stop_grpc, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
        let grpc = tokio::spawn(gateway::grpc::Grpc::new(core.clone()).serve(grpc, async {
            let _ = grpc_stopped.await;
        }));
        let video = video::Video::start(
            layout.clone(),
            track.clone(),
            video::VideoConfig {
                sfu: video::SfuConfig {
                    udp: args.webrtc_udp.iter().map(ToString::to_string).collect(),
                    per_address: args.video_sessions_per_address,
                    ..Default::default()
                },
                live_boards,
                ..Default::default()
            },
        )
        .await?;
        tracing::info!("{} cameras: WHEP on /whep/<camera>, WHIP on /whip/<camera>", layout.cameras.len());
        let app = gateway::server::router(core.clone())
            .merge(gateway::server::ingest(&track))
            .merge(gateway::video::router(core, video));
        gateway::server::serve(listener, app, shutdown_signal()).await?;
        let _ = stop_grpc.send(());
        grpc.await??;
        tracing::info!("shutting down");
        track.stop();
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
