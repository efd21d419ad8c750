//! The festivals' own layouts, built into the binary: the one `serve` runs with no layout given, the ones a
//! layout name (`--layout chofufes2023`) stands for, and the ones unit tests run on.

use super::Layout;

/// The 2021 Chofu festival layout's file (`scenarios/layouts/chofufes2021.toml`).
pub const CHOFUFES2021: &str = include_str!("../../../scenarios/layouts/chofufes2021.toml");

/// The 2023 Chofu festival layout's file (`scenarios/layouts/chofufes2023.toml`).
pub const CHOFUFES2023: &str = include_str!("../../../scenarios/layouts/chofufes2023.toml");

/// Every built-in layout, by the name that stands for it.
pub const EMBEDDED: [(&str, &str); 2] = [("chofufes2021", CHOFUFES2021), ("chofufes2023", CHOFUFES2023)];

/// The 2021 festival layout, validated.
pub fn layout_2021() -> Layout {
    Layout::from_toml(CHOFUFES2021).expect("the embedded 2021 layout is valid")
}

/// The 2023 festival layout, validated.
pub fn layout_2023() -> Layout {
    Layout::from_toml(CHOFUFES2023).expect("the embedded 2023 layout is valid")
}
