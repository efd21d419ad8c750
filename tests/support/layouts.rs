//! Paths and layouts: the 2021 and 2023 festivals', and small hand-made ones.

use std::path::PathBuf;
use std::sync::Arc;

use sim::layout::Layout;
use sim::layout::spec::LayoutSpec;

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The text of the 2021 layout file.
pub fn layout_2021_text() -> String {
    sim::layout::festival::CHOFUFES2021.to_string()
}

/// The 2021 layout.
pub fn layout_2021() -> Arc<Layout> {
    Arc::new(sim::layout::festival::layout_2021())
}

/// The 2021 layout keeping only the named trains (with their start positions and speeds from the file).
pub fn layout_2021_with(trains: &[&str]) -> Arc<Layout> {
    let mut spec: LayoutSpec = toml::from_str(&layout_2021_text()).expect("parse");
    spec.trains.retain(|t| trains.contains(&t.name.as_str()));
    Arc::new(Layout::from_spec(&spec).expect("valid"))
}

/// A loop with a passing siding:
///
/// ```text
///   in: M --1000--> SW        (stop rail `s1` at 500 mm, sensor `in_mid` at 250 mm)
///   main:  SW(straight)  --2000--> M(straight)
///   side:  SW(diverging) --2000--> M(diverging)
/// ```
/// `SW` is switch `b1`; `M` is a spring point (normal straight), or with `rigid_merge` a non-trailable
/// switch `b2`. `trains` is TOML for `[[train]]` tables.
pub fn siding_layout(rigid_merge: bool, trains: &str) -> Arc<Layout> {
    let merge = if rigid_merge {
        r#"kind = "switch""#
    } else {
        r#"kind = "spring"
normal = "straight""#
    };
    let merge_device = if rigid_merge {
        r#"
[[device]]
name = "test_b2"
kind = "switch"
station = "test"
board = "servo"
pin = 14
on_angle = 90
off_angle = 0
initial = "OFF"
node = "M"
"#
    } else {
        ""
    };
    let text = format!(
        r#"
name = "siding"
canvas = {{ width = 400, height = 200 }}

[[station]]
id = "test"
name_ja = "テスト"
name_en = "Test"

[[board]]
name = "servo"
address = "127.0.0.1:80"
kind = "servo"

[[board]]
name = "sensors"
address = "127.0.0.1"
kind = "sensor"

[[board]]
name = "speed"
address = "127.0.0.1:1111"
kind = "speed"

[[node]]
id = "SW"
x = 300
y = 100
kind = "switch"
trunk = "in"
straight = "main"
diverging = "side"

[[node]]
id = "M"
x = 100
y = 100
{merge}
trunk = "in"
straight = "main"
diverging = "side"

[[segment]]
id = "in"
from = "M"
to = "SW"
length_mm = 1000

[[segment]]
id = "main"
from = "SW"
to = "M"
length_mm = 2000
points = [[300, 50], [100, 50]]

[[segment]]
id = "side"
from = "SW"
to = "M"
length_mm = 2000
points = [[300, 150], [100, 150]]

[[device]]
name = "test_b1"
kind = "switch"
station = "test"
board = "servo"
pin = 13
on_angle = 90
off_angle = 0
initial = "OFF"
node = "SW"

[[device]]
name = "test_s1"
kind = "stop_rail"
station = "test"
board = "servo"
pin = 4
on_angle = 90
off_angle = 0
initial = "ON"
segment = "in"
offset_mm = 500
{merge_device}
[[sensor]]
name = "in_mid"
segment = "in"
offset_mm = 250
board = "sensors"
pin = 1

[[sensor]]
name = "main_mid"
segment = "main"
offset_mm = 1000
board = "sensors"
pin = 2

[[sensor]]
name = "side_mid"
segment = "side"
offset_mm = 1000
board = "sensors"
pin = 3
{trains}
"#
    );
    Arc::new(Layout::from_toml(&text).unwrap_or_else(|e| panic!("test layout: {e}")))
}

/// TOML for one train.
pub fn train(name: &str, segment: &str, offset_mm: f64, toward: &str, speed: u32) -> String {
    format!(
        r#"
[[train]]
name = "{name}"
length_mm = 300
max_speed_mm_s = 300
speed_mm_s = {speed}
start = {{ segment = "{segment}", offset_mm = {offset_mm}, toward = "{toward}" }}
"#
    )
}

/// TOML for one train with an onboard speed controller (the siding layout's `speed` board).
pub fn controlled_train(name: &str, segment: &str, offset_mm: f64, toward: &str, speed: u32) -> String {
    format!("{}controller = \"speed\"\n", train(name, segment, offset_mm, toward, speed))
}

/// The 2023 Chofu festival layout (blocks, pass detectors, MQTT boards).
pub fn layout_2023() -> Arc<Layout> {
    Arc::new(sim::layout::festival::layout_2023())
}
