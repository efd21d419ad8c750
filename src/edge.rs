//! `plarail-twin edge`: a public edge gateway. It runs no track: the layout, the state and every change come
//! from the on-site core (`serve --broker`) through the MQTT broker, and its clients' commands go back the same
//! way. Any number run side by side behind a load balancer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::serve::{BrokerArgs, ConfigFile, DEFAULT_LISTEN, DEFAULT_LOG};

/// Flags of `edge`. Each can also come from a `PLARAIL_*` environment variable or the config file; the
/// defaults are `serve`'s.
#[derive(clap::Args)]
pub struct EdgeArgs {
    /// TOML config file, as `serve`'s (an edge's settings only: `listen`, `grpc_listen`, `layout_name`, the rate
    /// limits, `origins`, `core_url`, `webrtc_udp`, `video_sessions_per_address`, `log` and the broker's);
    /// flags and environment variables win over it.
    #[arg(long, env = "PLARAIL_CONFIG")]
    config: Option<PathBuf>,
    /// The broker and how to log in (`--broker` is required here).
    #[command(flatten)]
    broker: BrokerArgs,
    /// Address of the HTTP server (page, WebSockets, API, metrics) [default: 127.0.0.1:8080].
    #[arg(long, env = "PLARAIL_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address of the gRPC server (the 2021 Control and Speed services, and the v2 state feed) [default: none].
    #[arg(long, env = "PLARAIL_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// The layout's name, for the default topic prefix plarail/<name> (or give --topics) [default: chofufes2021].
    #[arg(long)]
    layout_name: Option<String>,
    /// Commands one visitor connection may send per second [default: 10].
    #[arg(long, env = "PLARAIL_RATE_PER_CONNECTION")]
    rate_per_connection: Option<f64>,
    /// Commands all connections from one address may send per second (on this edge) [default: 50].
    #[arg(long, env = "PLARAIL_RATE_PER_ADDRESS")]
    rate_per_address: Option<f64>,
    /// Origins allowed to open a WebSocket (repeatable) [default: any].
    #[arg(long = "origin", env = "PLARAIL_ORIGINS", value_delimiter = ',')]
    origins: Vec<String>,
    /// The on-site core's HTTP address (http://HOST:PORT), from which each watched camera is pulled once (WHEP)
    /// for this edge's viewers [default: none: the cameras are listed with no signal].
    #[arg(long, env = "PLARAIL_CORE_URL")]
    core_url: Option<String>,
    /// Local UDP address WebRTC connections bind (repeatable) [default: 0.0.0.0:0].
    #[arg(long = "webrtc-udp", env = "PLARAIL_WEBRTC_UDP", value_delimiter = ',')]
    webrtc_udp: Vec<SocketAddr>,
    /// Video sessions one client address may have open at once on this edge [default: 16].
    #[arg(long, env = "PLARAIL_VIDEO_SESSIONS_PER_ADDRESS")]
    video_sessions_per_address: Option<usize>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter [default: info].
    #[arg(long, env = "PLARAIL_LOG")]
    log: Option<String>,
}

/// An edge's settings: the flags (and environment) over the config file over `serve`'s defaults.
struct Settings {
    broker: BrokerArgs,
    listen: SocketAddr,
    grpc_listen: Option<SocketAddr>,
    layout_name: String,
    limits: gateway::limits::Limits,
    core_url: Option<String>,
    webrtc_udp: Vec<SocketAddr>,
    video_sessions_per_address: usize,
    log: String,
}

impl EdgeArgs {
    /// Merges the flags over the config file over the defaults; a setting only `serve` has is refused.
    fn settings(self) -> anyhow::Result<Settings> {
        let (mut file, base) = ConfigFile::read(self.config.as_deref())?;
        let serve_only = file.serve_only();
        anyhow::ensure!(
            serve_only.is_empty(),
            "{}: {} only for `serve`, not an edge",
            self.config.as_deref().unwrap_or_else(|| std::path::Path::new("the config file")).display(),
            serve_only.join(", ")
        );
        let defaults = gateway::limits::Limits::default();
        Ok(Settings {
            broker: self.broker.over(&mut file, &base),
            listen: self.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN),
            grpc_listen: self.grpc_listen.or(file.grpc_listen),
            layout_name: self.layout_name.or(file.layout_name).unwrap_or_else(|| "chofufes2021".into()),
            limits: gateway::limits::Limits {
                per_connection: self
                    .rate_per_connection
                    .or(file.rate_per_connection)
                    .unwrap_or(defaults.per_connection),
                per_address: self.rate_per_address.or(file.rate_per_address).unwrap_or(defaults.per_address),
                origins: if self.origins.is_empty() { file.origins.unwrap_or_default() } else { self.origins },
            },
            core_url: self.core_url.or(file.core_url),
            webrtc_udp: if self.webrtc_udp.is_empty() { file.webrtc_udp.unwrap_or_default() } else { self.webrtc_udp },
            video_sessions_per_address: self
                .video_sessions_per_address
                .or(file.video_sessions_per_address)
                .unwrap_or(video::SfuConfig::default().per_address),
            log: self.log.or(file.log).unwrap_or_else(|| DEFAULT_LOG.into()),
        })
    }
}

/// Runs an edge until Ctrl-C or SIGTERM.
pub fn run(args: EdgeArgs) -> anyhow::Result<ExitCode> {
    let args = args.settings()?;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).with_context(|| format!("--log {}", args.log))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let broker = args.broker.broker()?.context("an edge needs --broker mqtt://HOST:PORT (the core's broker)")?;
    let topics = args.broker.topics(&args.layout_name)?;
    anyhow::ensure!(
        args.limits.per_connection > 0.0 && args.limits.per_address > 0.0,
        "the rate limits must be positive numbers"
    );
    if let Some(url) = &args.core_url {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "--core-url {url}: the core's HTTP address, http://HOST:PORT"
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        // Bound first: a port in use is told at once, not after the broker answered.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!("edge: waiting for the track on {} under {}/", broker.url(), topics.prefix());
        let edge = gateway::broker::edge::Edge::connect(&broker, topics).await.map_err(|e| anyhow::anyhow!(e))?;
        let options = gateway::core::Options { limits: args.limits, ..Default::default() };
        let core = gateway::core::Core::over(Arc::new(edge), options, Default::default());
        tracing::info!(layout = %core.layout().name, "edge serving http://{}", listener.local_addr()?);
        let grpc = match args.grpc_listen {
            Some(addr) => {
                let grpc =
                    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
                tracing::info!("gRPC on {}", grpc.local_addr()?);
                let service = gateway::grpc::Grpc::new(core.clone());
                Some(tokio::spawn(service.serve(grpc, crate::serve::shutdown_signal())))
            }
            None => None,
        };
        let sfu = video::SfuConfig {
            udp: if args.webrtc_udp.is_empty() {
                video::SfuConfig::default().udp
            } else {
                args.webrtc_udp.iter().map(ToString::to_string).collect()
            },
            per_address: args.video_sessions_per_address,
            ..Default::default()
        };
        let core_url = args.core_url.as_deref().map(|u| u.trim_end_matches('/').to_string());
        if core_url.is_none() {
            tracing::warn!("no --core-url: the cameras are listed with no signal");
        }
        let video = video::Video::cascade(core.layout().clone(), core_url, sfu);
        let app = gateway::server::router(core.clone()).merge(gateway::video::router(core, video));
        gateway::server::serve(listener, app, crate::serve::shutdown_signal()).await?;
        if let Some(grpc) = grpc {
            grpc.await??;
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
