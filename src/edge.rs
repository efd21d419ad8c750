//! `plarail-twin edge`: a public edge gateway. It runs no track: the layout, the state and every change come
//! from the on-site core (`serve --broker`) through the MQTT broker, and its clients' commands go back the same
//! way. Any number run side by side behind a load balancer.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::serve::BrokerArgs;

/// Flags of `edge`.
#[derive(clap::Args)]
pub struct EdgeArgs {
    /// The broker and how to log in (`--broker` is required here).
    #[command(flatten)]
    broker: BrokerArgs,
    /// Address of the HTTP server (page, WebSockets, API, metrics).
    #[arg(long, env = "PLARAIL_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the gRPC server (the 2021 Control and Speed services, and the v2 state feed) [default: none].
    #[arg(long, env = "PLARAIL_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// The layout's name, for the default topic prefix plarail/<name> (or give --topics).
    #[arg(long, default_value = "chofufes2021")]
    layout_name: String,
    /// Commands one visitor connection may send per second.
    #[arg(long, env = "PLARAIL_RATE_PER_CONNECTION", default_value_t = 10.0)]
    rate_per_connection: f64,
    /// Commands all connections from one address may send per second (on this edge).
    #[arg(long, env = "PLARAIL_RATE_PER_ADDRESS", default_value_t = 50.0)]
    rate_per_address: f64,
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
    /// Video sessions one client address may have open at once on this edge.
    #[arg(long, env = "PLARAIL_VIDEO_SESSIONS_PER_ADDRESS", default_value_t = 16)]
    video_sessions_per_address: usize,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "PLARAIL_LOG", default_value = "info")]
    log: String,
}

/// Runs an edge until Ctrl-C or SIGTERM.
pub fn run(args: EdgeArgs) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).with_context(|| format!("--log {}", args.log))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let broker = args.broker.broker()?.context("an edge needs --broker mqtt://HOST:PORT (the core's broker)")?;
    let topics = args.broker.topics(&args.layout_name)?;
    anyhow::ensure!(
        args.rate_per_connection > 0.0 && args.rate_per_address > 0.0,
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
        let limits = gateway::limits::Limits {
            per_connection: args.rate_per_connection,
            per_address: args.rate_per_address,
            origins: args.origins,
        };
        let options = gateway::core::Options { limits, ..Default::default() };
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
