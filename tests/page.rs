//! The phone control page, driven in headless Chromium (Debian's `chromium`) over the DevTools protocol: a
//! click on a stop rail changes it on the page and in a second browser, a refusal shows its reason, trains
//! move, a phone-wide page does not overflow, and screenshots are saved.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Ws, gateway_with};

/// One headless Chromium with one page, driven over the DevTools protocol.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: Ws,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium (fresh profile, no network beyond loopback services) showing `url` at `width` x `height`.
    async fn open(url: &str, width: u32, height: u32) -> Browser {
        Browser::open_with(url, width, height, &[]).await
    }

    /// Like [`Browser::open`], with more command-line flags.
    pub async fn open_with(url: &str, width: u32, height: u32, flags: &[&str]) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.path().display()),
                &format!("--window-size={width},{height}"),
            ])
            .args(flags)
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium must be installed (apt-get install chromium); .ci/run installs it");
        let port = devtools_port(profile.path()).await;
        let list = reqwest::get(format!("http://127.0.0.1:{port}/json/list")).await.unwrap().text().await.unwrap();
        let list: Value = serde_json::from_str(&list).unwrap();
        let page = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let devtools = tokio_tungstenite::connect_async(page).await.expect("DevTools socket").0;
        let mut browser = Browser { child, _profile: profile, devtools, next_id: 1 };
        // Headless windows are at least 500 px wide: emulate the screen size (a phone's when narrow).
        let screen = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 });
        browser.call("Emulation.setDeviceMetricsOverride", screen).await;
        browser.call("Page.reload", json!({})).await;
        browser
    }

    /// Calls a DevTools method; returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "id": id, "method": method, "params": params });
        self.devtools.send(Message::Text(request.to_string().into())).await.unwrap();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), self.devtools.next())
                .await
                .expect("a DevTools answer in time")
                .expect("DevTools socket open")
                .unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page; returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true })).await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page (or fails after `limit`, naming `what`); an expression
    /// that throws (the page still loading) counts as not yet.
    pub async fn until(&mut self, what: &str, limit: Duration, expression: &str) {
        let started = Instant::now();
        let guarded = format!("(() => {{ try {{ return {expression}; }} catch (_) {{ return false; }} }})()");
        while self.eval(&guarded).await != json!(true) {
            if started.elapsed() > limit {
                let shown = self.eval("document.querySelector('#notice')?.textContent").await;
                panic!("{what}: not within {limit:?} (the page's notice: {shown})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks with the mouse in the middle of the element `selector` (scrolled into view first).
    pub async fn click(&mut self, selector: &str) {
        let at = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector:?}); e.scrollIntoView({{block: 'center'}}); \
                 const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            let event = json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 });
            self.call("Input.dispatchMouseEvent", event).await;
        }
    }

    /// Saves a PNG screenshot of the page to `path`; returns its bytes.
    pub async fn screenshot(&mut self, path: &Path) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, &png).unwrap();
        png
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DevTools port Chromium chose, from the `DevToolsActivePort` file in its profile.
async fn devtools_port(profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Some(port) = text.lines().next().and_then(|l| l.parse().ok())
        {
            return port;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "chromium did not open its DevTools port");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where screenshots go: `target/tmp/page-*.png`.
pub fn screenshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// The devices on the map whose mark's middle is covered by something else (another device, a button).
const COVERED: &str = "[...document.querySelectorAll('svg .dev')].filter(g => { \
    const r = g.querySelector('.mark').getBoundingClientRect(); \
    const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2); \
    g.cover = hit ? (hit.closest('[data-device]')?.dataset.device || hit.id || hit.tagName) : 'nothing'; \
    return !hit || hit.closest('[data-device]') !== g; }).map(g => `${g.dataset.device} under ${g.cover}`)";

/// Pairs of labels on the map that overlap: a station's name and a train's, or two trains'.
const COLLISIONS: &str = "(() => { \
    const box = (e) => e.getBoundingClientRect(); \
    const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom; \
    const stations = [...document.querySelectorAll('svg .station')]; \
    const trains = [...document.querySelectorAll('.train:not([data-status=removed]) text')]; \
    const out = []; \
    for (const t of trains) { for (const s of stations) if (hit(box(t), box(s))) out.push([t.textContent, s.textContent]); \
      for (const u of trains) if (u !== t && t.textContent < u.textContent && hit(box(t), box(u))) out.push([t.textContent, u.textContent]); } \
    return out; })()";

/// Waits until TAKAO's controller was sent `speed`.
async fn until_controller_got(track: &hil::track::Track, speed: i32) {
    let controller = track.virtual_controllers()[0].clone();
    crate::support::until("TAKAO's controller got the speed", Duration::from_secs(10), async || {
        controller.received().last() == Some(&speed)
    })
    .await;
}

const LOADED: &str = "document.querySelector('#conn').dataset.state === 'connected' && \
                      document.querySelector('[data-device=\"chofu_s2\"]').dataset.state !== ''";

fn device_state(name: &str) -> String {
    format!("document.querySelector('svg [data-device=\"{name}\"]').dataset.state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: run by .ci/run"]
async fn the_page_operates_the_track_and_every_browser_sees_it() {
    let _alone = crate::support::CPU_HEAVY.lock().await;
    let (track, addr) = gateway_with(gateway::core::Options::default()).await;
    let url = format!("http://{addr}/");
    let mut desk = Browser::open(&url, 1280, 1000).await;
    let mut phone = Browser::open(&url, 390, 844).await;
    let limit = Duration::from_secs(20);
    desk.until("desktop page connected", limit, LOADED).await;
    phone.until("phone page connected", limit, LOADED).await;

    // The map is drawn from the layout: a line per segment, a mark per device, the mode shown.
    let drawn = desk.eval("[document.querySelectorAll('.track').length, document.querySelectorAll('svg .dev').length, document.querySelector('#mode').textContent]").await;
    assert_eq!(drawn, json!([track.layout().segments.len(), 39, "SIM"]));

    // Click the stop rail chofu_s2 (initially lowered) on the desktop map: both pages show it raised.
    assert_eq!(desk.eval(&device_state("chofu_s2")).await, json!("OFF"));
    desk.click("svg [data-device=\"chofu_s2\"] .hit").await;
    desk.until("the clicked stop rail raised", limit, &format!("{} === 'ON'", device_state("chofu_s2"))).await;
    phone.until("the second browser sees it", limit, &format!("{} === 'ON'", device_state("chofu_s2"))).await;
    let id = track.layout().device_id("chofu_s2").unwrap();
    assert_eq!(track.state().await.devices[id].state(), Some(sim::layout::OnOff::On));

    // On the phone, the switch chofu_b3's button in the device list sets it straight; the desktop map shows it.
    let blade = "document.querySelector('svg [data-device=\"chofu_b3\"] .blade').getAttribute('x2')";
    let diverging = desk.eval(blade).await;
    assert_eq!(phone.eval(&device_state("chofu_b3")).await, json!("ON"));
    phone.click(".devbtn[data-device=\"chofu_b3\"]").await;
    desk.until("switched from the phone", limit, &format!("{} === 'OFF'", device_state("chofu_b3"))).await;
    assert_ne!(desk.eval(blade).await, diverging, "the blade turns to the straight branch");
    phone
        .until(
            "the button shows it",
            limit,
            "document.querySelector('.devbtn[data-device=\"chofu_b3\"]').dataset.state === 'OFF'",
        )
        .await;

    // A click the interlocking refuses shows its reason, and changes nothing.
    desk.click("svg [data-device=\"meidaimae_s1\"] .hit").await;
    desk.until("the refusal shown", limit, "document.querySelector('#notice').dataset.kind === 'rejected'").await;
    let notice = desk.eval("document.querySelector('#notice').textContent").await;
    assert!(notice.as_str().unwrap().contains("OKUTAMA"), "{notice}");
    assert_eq!(desk.eval(&device_state("meidaimae_s1")).await, json!("ON"));

    // Lowering the stop rail a train waits at (from the phone's list) sets it off, and it moves on the map.
    let position = "JSON.stringify([...document.querySelectorAll('.train')].map(t => [t.dataset.x, t.dataset.y]))";
    let before = desk.eval(position).await;
    phone.click(".devbtn[data-device=\"kudanshita_s6\"]").await;
    // (It is raised again behind the train as soon as the train has passed, so look for the ack.)
    phone.until("the lowering applied", limit, "document.querySelector('#notice').dataset.kind === 'applied'").await;
    desk.until("a train moved", limit, &format!("{position} !== {before}")).await;

    // The phone page fits 390 px: nothing wider than the screen.
    assert_eq!(phone.eval("document.documentElement.scrollWidth <= 390").await, json!(true));
    // On the phone nothing tappable on the map is covered: the middle of every device's mark is that device.
    phone.eval("document.querySelector('#map').scrollIntoView({block: 'center'})").await;
    let covered = phone.eval(COVERED).await;
    assert_eq!(covered, json!([]), "devices covered on a phone");
    // ... and no station name collides with a train's name, nor two trains' names.
    phone.until("trains placed", limit, "document.querySelector('.train').dataset.x !== undefined").await;
    let collisions = phone.eval(COLLISIONS).await;
    assert_eq!(collisions, json!([]), "labels colliding on a phone");

    // Speeds as on the 2021 page: 0..100 in steps of 5, a meter, and which trains have a real controller.
    let kinds = desk.eval("[...document.querySelectorAll('#trainlist li')].map(li => li.dataset.controller)").await;
    assert_eq!(kinds[0], json!("true"), "TAKAO has its onboard controller");
    assert_eq!(kinds.as_array().unwrap().iter().filter(|k| **k == json!("true")).count(), 1);
    desk.eval(
        "(() => { const s = document.querySelector('#trainlist li[data-train=\"TAKAO\"] input[type=range]'); \
         s.value = 50; s.dispatchEvent(new Event('change')); })()",
    )
    .await;
    let meter = "document.querySelector('#trainlist li[data-train=\"TAKAO\"] meter').value";
    phone.until("the other browser's meter shows TAKAO at 50", limit, &format!("{meter} === 50")).await;
    until_controller_got(&track, 50).await;

    // The language switch turns the page into Japanese.
    let lang = desk.eval("document.documentElement.lang").await;
    desk.click("#lang").await;
    desk.until("language switched", limit, &format!("document.documentElement.lang !== {lang}")).await;

    for (browser, name) in [(&mut desk, "page-desktop.png"), (&mut phone, "page-phone.png")] {
        browser.eval("window.scrollTo(0, 0)").await;
        let png = browser.screenshot(&screenshot_path(name)).await;
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}: {} bytes", png.len());
    }
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and mosquitto: run by .ci/run"]
async fn the_page_on_two_edges_operates_the_core_s_track_and_shows_it_offline() {
    let _alone = crate::support::CPU_HEAVY.lock().await;
    let mosquitto = crate::support::Mosquitto::start();
    let broker = mosquitto.broker();
    let (track, core) = crate::support::core_of_its_own(&broker);
    let (a, b) = (crate::support::edge(&broker).await, crate::support::edge(&broker).await);
    let mut desk = Browser::open(&format!("http://{a}/"), 1280, 1000).await;
    let mut phone = Browser::open(&format!("http://{b}/"), 390, 844).await;
    let limit = Duration::from_secs(20);
    desk.until("desktop page connected", limit, LOADED).await;
    phone.until("phone page connected", limit, LOADED).await;
    assert_eq!(desk.eval("document.querySelector('#offline').hidden").await, json!(true));

    // A click on one edge's page reaches the core's track and the other edge's page.
    desk.click("svg [data-device=\"chofu_s2\"] .hit").await;
    desk.until("the clicked stop rail raised", limit, &format!("{} === 'ON'", device_state("chofu_s2"))).await;
    phone.until("the other edge's page sees it", limit, &format!("{} === 'ON'", device_state("chofu_s2"))).await;
    let id = track.layout().device_id("chofu_s2").unwrap();
    assert_eq!(track.state().await.devices[id].state(), Some(sim::layout::OnOff::On));
    // A refusal shows the interlocking's reason, as on one process.
    desk.click("svg [data-device=\"meidaimae_s1\"] .hit").await;
    desk.until("the refusal shown", limit, "document.querySelector('#notice').dataset.kind === 'rejected'").await;
    let notice = desk.eval("document.querySelector('#notice').textContent").await;
    assert!(notice.as_str().unwrap().contains("OKUTAMA"), "{notice}");

    // The core dies: both pages say the track is offline, and a click is refused with that reason.
    core.shutdown_background();
    for page in [&mut desk, &mut phone] {
        page.until("track offline shown", limit, "document.querySelector('#offline').hidden === false").await;
    }
    phone.click(".devbtn[data-device=\"chofu_b3\"]").await;
    phone.until("the refusal shown", limit, "document.querySelector('#notice').dataset.kind === 'failed'").await;
    let notice = phone.eval("document.querySelector('#notice').textContent").await;
    assert!(notice.as_str().unwrap().contains("offline"), "{notice}");
    let png = desk.screenshot(&screenshot_path("page-edge-offline.png")).await;
    assert!(png.starts_with(b"\x89PNG"));
}

/// The page on the 2023 layout, its boards on the embedded broker: every block drawn free with its detectors,
/// the legend says what the colours mean; a click lowers Shinjuku's stop rail through MQTT, the train's block
/// turns occupied, then free again once the train has left it; every 2023 board listed as answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: run by .ci/run"]
async fn the_page_draws_the_2023_blocks_occupied_and_free() {
    let _alone = crate::support::CPU_HEAVY.lock().await;
    let broker = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    let config = hil::track::TrackConfig { pace: 4.0, ..crate::support::config() };
    let setup = hil::track::Setup { config, boards2023: Some(broker.board_broker()), ..Default::default() };
    let track = hil::track::Track::start(crate::support::layout_2023(), setup).await.unwrap();
    let addr = crate::support::serve(track.clone(), gateway::core::Options::default()).await;
    let mut desk = Browser::open(&format!("http://{addr}/"), 1280, 1000).await;
    let limit = Duration::from_secs(20);
    let loaded = "document.querySelector('#conn').dataset.state === 'connected' && \
                  document.querySelector('[data-device=\"shinjyuku_down_s1\"]').dataset.state !== ''";
    desk.until("page connected", limit, loaded).await;
    let drawn = desk
        .eval("[document.querySelectorAll('.track.block').length, document.querySelectorAll('.detector').length, document.querySelector('.blocklegend').hidden]")
        .await;
    assert_eq!(drawn, json!([11, 22, false]));
    let block = "document.querySelector('.track[data-block=\"shinjyuku_down_b1\"]').classList.contains('occupied')";
    assert_eq!(desk.eval(block).await, json!(false));
    desk.until(
        "every 2023 board listed, answering",
        limit,
        "document.querySelectorAll('#boardlist li').length === 5 && !document.querySelector('#boardlist li.down')",
    )
    .await;
    // Every device stands as desired once its board has answered its get (the points boot between positions,
    // where the interlocking lets no train run onto them); then a click lowers Shinjuku's stop rail.
    desk.until(
        "every device in place",
        limit,
        "[...document.querySelectorAll('svg .dev')].every((g) => g.dataset.state === 'ON' || g.dataset.state === 'OFF')",
    )
    .await;
    assert_eq!(desk.eval(&device_state("shinjyuku_down_s1")).await, json!("ON"));
    desk.click("svg [data-device=\"shinjyuku_down_s1\"] .hit").await;
    desk.until("the block occupied", limit, block).await;
    desk.screenshot(&screenshot_path("page-2023-block-occupied.png")).await;
    desk.until("the block free again", limit, &format!("!{block}")).await;
    track.stop();
}

/// On a desktop-wide screen (1400 px) the page uses its width: the whole map shows (no station name cut at its
/// edge), no two station names run into each other (Kudanshita and Sasazuka share a platform track), the lists
/// and the video beside the map rather than below it. The operator turns on mixed operation from the page: the
/// badge shows it and every train's plan (automatic, next stop, why it waits, its calls) appears in the train list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: run by .ci/run"]
async fn a_desktop_wide_page_shows_the_whole_map_and_the_operator_turns_on_mixed_operation() {
    let _alone = crate::support::CPU_HEAVY.lock().await;
    const TOKEN: &str = "operator-token-0123456789";
    let options = gateway::core::Options { operator_token: Some(TOKEN.into()), ..Default::default() };
    let (track, addr) = gateway_with(options).await;
    let mut desk = Browser::open(&format!("http://{addr}/"), 1400, 1000).await;
    let limit = Duration::from_secs(20);
    desk.until("desktop page connected", limit, LOADED).await;

    let cut = desk
        .eval(
            "(() => { const map = document.querySelector('#map').getBoundingClientRect(); \
             return [...document.querySelectorAll('svg .station')].filter(s => { const r = s.getBoundingClientRect(); \
             return r.left < map.left || r.right > map.right || r.top < map.top || r.bottom > map.bottom; }) \
             .map(s => s.textContent); })()",
        )
        .await;
    assert_eq!(cut, json!([]), "station names cut at the map's edge");
    let overlapping = desk
        .eval(
            "(() => { const names = [...document.querySelectorAll('svg .station')]; const out = []; \
             names.forEach((a, i) => names.slice(i + 1).forEach(b => { const p = a.getBoundingClientRect(), \
             q = b.getBoundingClientRect(); if (p.left < q.right && q.left < p.right && p.top < q.bottom && \
             q.top < p.bottom) out.push(a.textContent + '/' + b.textContent); })); return out; })()",
        )
        .await;
    assert_eq!(overlapping, json!([]), "station names running into each other");
    let beside = desk
        .eval(
            "(() => { const map = document.querySelector('#mapbox').getBoundingClientRect(); \
             const list = document.querySelector('#trains').getBoundingClientRect(); \
             return list.left >= map.right && list.top < map.bottom; })()",
        )
        .await;
    assert_eq!(beside, json!(true), "the lists beside the map");
    assert_eq!(desk.eval("document.documentElement.scrollWidth <= 1400").await, json!(true));

    // The operator turns on mixed operation.
    assert_eq!(desk.eval("document.querySelector('#operation').hidden").await, json!(true));
    desk.eval("document.querySelector('#operator').open = true").await;
    desk.eval(&format!("document.querySelector('#token').value = {TOKEN:?}")).await;
    desk.click("[data-action=\"mixed\"]").await;
    desk.until("the badge shows mixed", limit, "!document.querySelector('#operation').hidden && document.querySelector('#operation').dataset.operation === 'mixed'").await;
    assert_eq!(track.automatic().0, sim::auto::Operation::Mixed);
    desk.until(
        "every train's plan shown",
        limit,
        "[...document.querySelectorAll('#trainlist .plan')].filter(p => !p.hidden && p.textContent.length > 0).length === 8",
    )
    .await;
    desk.until(
        "a train's calls at stations counted",
        Duration::from_secs(40),
        "[...document.querySelectorAll('#trainlist .plan')].some(p => /[0-9]+ (calls|停車)/.test(p.textContent))",
    )
    .await;
    desk.eval("window.scrollTo(0, 0)").await;
    let png = desk.screenshot(&screenshot_path("page-desktop-wide.png")).await;
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: run by .ci/run"]
async fn the_operator_panel_shows_the_recorded_session_as_a_timeline() {
    let _alone = crate::support::CPU_HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = std::sync::Arc::new(gateway::journal::Journal::open(dir.path()).unwrap().0);
    let (_track, addr) = gateway_with(gateway::core::Options { journal: Some(journal), ..Default::default() }).await;
    // A visitor's command the interlocking refuses, and one it takes.
    let mut v2 = crate::support::ws(addr, "/ws/v2").await;
    for (id, name) in [(1, "meidaimae_s1"), (2, "chofu_b3")] {
        crate::support::send(&mut v2, json!({"id": id, "cmd": "device", "name": name, "state": "OFF"})).await;
        crate::support::expect(&mut v2, |v| v["id"] == id).await;
    }
    let mut page = Browser::open(&format!("http://{addr}/"), 1400, 1000).await;
    let limit = Duration::from_secs(20);
    page.until("page connected", limit, LOADED).await;
    page.eval("document.querySelector('#operator').open = true").await;
    page.until(
        "the refusal marked on the timeline and listed",
        limit,
        "document.querySelectorAll('#timeline .mark.rejected').length === 1 && \
         document.querySelectorAll('#timeline .mark.command').length === 1 && \
         document.querySelector('#timeline-list li.rejected').textContent.includes('meidaimae_s1') && \
         document.querySelector('#timeline-list li.session') !== null",
    )
    .await;
    page.eval("document.querySelector('#operator').scrollIntoView()").await;
    page.screenshot(&screenshot_path("page-timeline.png")).await;
}
