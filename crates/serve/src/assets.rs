//! The page and its assets, embedded in the binary: the dashboard works with no
//! network at all. Our own script and SVG charts; no third-party code.

/// The page; `{{TOKEN}}` becomes the token the page sends in a header.
pub(crate) const INDEX: &str = include_str!("../assets/index.html");

/// An asset by name: its content type and bytes.
pub(crate) fn get(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "app.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../assets/app.js"),
        ),
        "pages.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../assets/pages.js"),
        ),
        "chart.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../assets/chart.js"),
        ),
        "app.css" => ("text/css; charset=utf-8", include_str!("../assets/app.css")),
        _ => return None,
    })
}
