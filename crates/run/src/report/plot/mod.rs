//! SVG line charts: linear or log axes, several series (solid or dashed), vertical
//! markers with hover text. Shared by the run report, the comparison page and
//! lr-find's chart.

mod marks;

use std::fmt::Write as _;

/// One line of a chart: its name, colour, style and `(x, y)` points.
pub struct Series {
    /// The legend's text.
    pub name: String,
    /// The CSS colour.
    pub color: String,
    /// Drawn dashed (training curves).
    pub dashed: bool,
    /// Drawn light (raw data behind a smoothed curve), without points.
    pub faint: bool,
    /// The stroke's width in pixels.
    pub width: f64,
    /// The `(x, y)` points; non-finite ones (or non-positive on a log axis) are skipped.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A solid series of width 2.
    pub fn new(name: &str, color: &str, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            color: color.into(),
            dashed: false,
            faint: false,
            width: 2.0,
            points,
        }
    }
}

/// A number unique in the process, for the ids of clip paths (several charts share
/// one page).
fn clip_id() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A vertical line with a hover text (a suggested LR); `tag`, when set, is written
/// at its top (tags are staggered so that none overlaps another).
pub struct VLine {
    /// Where, on the x axis.
    pub x: f64,
    /// The hover text.
    pub label: String,
    /// The CSS colour.
    pub color: String,
    /// A text written at its top.
    pub tag: Option<String>,
}

/// A line chart: axes (linear or log), series, vertical markers, policy events.
pub struct Plot<'a> {
    /// The chart's title.
    pub title: &'a str,
    /// The x axis's label.
    pub x_label: &'a str,
    /// A log x axis.
    pub x_log: bool,
    /// A log y axis.
    pub y_log: bool,
    /// Tick only whole numbers on x (epochs).
    pub x_whole: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// The vertical markers.
    pub vlines: Vec<VLine>,
    /// Policy events, at the end of their epoch (x = epoch + 1): a symbol per kind in
    /// a lane of its own at the top, a faint line down the chart.
    pub events: &'a [super::markers::Group],
    /// The y axis's label.
    pub y_label: &'a str,
    /// The y range to show (the curves are clipped to it); from the data when `None`.
    pub y_range: Option<(f64, f64)>,
    /// The series' legend inside the SVG (a chart saved on its own), not below it.
    pub legend_inside: bool,
    /// A legend of the series below the chart (a page with a legend of its own says
    /// no).
    pub legend: bool,
}

const W: f64 = 520.0;
const H: f64 = 250.0;
/// The strip above a standalone chart that holds its heading.
const HEADING: f64 = 28.0;
const ML: f64 = 62.0;
const MR: f64 = 16.0;
const MT: f64 = 14.0;
const MB: f64 = 38.0;

/// Colours for runs overlaid on one chart, in order.
pub const PALETTE: [&str; 10] = [
    "#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#1098ad", "#f08c00", "#495057",
    "#5c940d", "#a61e4d",
];

/// Round tick positions covering `[lo, hi]`.
pub(super) fn ticks(lo: f64, hi: f64, want: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / want as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= want as f64)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).ceil() * step;
    (0..)
        .map(|i| start + i as f64 * step)
        .take_while(|v| *v <= hi + step * 1e-9)
        .collect()
}

/// Ticks on a log axis, as log10 values: whole decades when the range spans two or
/// more, else round linear ticks of the log values.
fn log_ticks(lo: f64, hi: f64, want: usize) -> Vec<f64> {
    if hi - lo >= 2.0 {
        let step = ((hi - lo) / want as f64).ceil().max(1.0);
        let start = (lo / step).ceil() * step;
        (0..)
            .map(|i| start + i as f64 * step)
            .take_while(|v| *v <= hi + 1e-9)
            .collect()
    } else {
        // 1, 2, 5 in each decade the range touches.
        let mut out = Vec::new();
        for k in (lo.floor() as i32)..=(hi.ceil() as i32) {
            for m in [1.0f64, 2.0, 5.0] {
                let t = (m * 10f64.powi(k)).log10();
                if t >= lo - 1e-9 && t <= hi + 1e-9 {
                    out.push(t);
                }
            }
        }
        out
    }
}

pub use rudder_core::text::fmt_num;

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Plot<'_> {
    /// The chart as an SVG inside a `<figure>`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<figure class="card"><figcaption>{}</figcaption>"#,
            esc(self.title)
        );
        let Some(f) = self.frame() else {
            out.push_str(r#"<p class="empty">no finished epoch yet</p></figure>"#);
            return out;
        };
        self.svg(&mut out, &f, None);
        if self.series.len() > 1 && self.legend && !self.legend_inside {
            self.legend_below(&mut out);
        }
        out.push_str("</figure>");
        out
    }

    /// The chart as an SVG file of its own: `heading` in a strip above it (and as
    /// its `<title>`), the styles a report's CSS gives written inline; an empty SVG
    /// with the heading when nothing can be drawn.
    pub fn standalone(&self, heading: &str) -> String {
        let mut out = String::new();
        match self.frame() {
            Some(f) => self.svg(&mut out, &f, Some(heading)),
            None => {
                let _ = write!(
                    out,
                    r#"<svg viewBox="0 -{HEADING} {W} {HEADING}"><title>{}</title></svg>"#,
                    esc(heading)
                );
            }
        }
        out.replacen(
            "<svg ",
            r#"<svg xmlns="http://www.w3.org/2000/svg" style="font:11px sans-serif;background:#fff" "#,
            1,
        )
        .replace(r#"class="grid""#, r##"stroke="#eceef2""##)
        .replace(r#"class="frame""#, r##"fill="none" stroke="#c7ccd6""##)
        .replace(r#"class="tick""#, r##"fill="#5b6478""##)
        .replace(r#"class="axis""#, r##"fill="#5b6478""##)
        .replace(r#"class="tag""#, r#"font-weight="600""#)
        .replace(
            r#"class="marker""#,
            r#"stroke-dasharray="4 3" stroke-width="1.5""#,
        )
    }

    /// The `<svg>` element; a `heading` is written in a strip the viewBox grows
    /// upwards by.
    fn svg(&self, out: &mut String, f: &Frame, heading: Option<&str>) {
        let view = match heading {
            Some(_) => format!("0 -{HEADING} {W} {}", H + HEADING),
            None => format!("0 0 {W} {H}"),
        };
        let _ = write!(
            out,
            r#"<svg viewBox="{view}" role="img" aria-label="{}">"#,
            esc(self.title)
        );
        if let Some(h) = heading {
            let _ = write!(
                out,
                r##"<title>{t}</title><text x="12" y="-10" font-size="13" font-weight="600" fill="#1d2330">{t}</text>"##,
                t = esc(h)
            );
        }
        self.axes(out, f);
        self.event_marks(out, f);
        self.lines(out, f);
        self.curves(out, f);
        self.tags(out, f);
        if self.legend_inside {
            self.legend_in_chart(out, f);
        }
        out.push_str("</svg>");
    }

    fn tx(&self, x: f64) -> f64 {
        if self.x_log { x.log10() } else { x }
    }

    fn ty(&self, y: f64) -> f64 {
        if self.y_log { y.log10() } else { y }
    }

    /// Whether a point can be drawn (finite, positive on a log axis).
    fn usable(&self, &(x, y): &(f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.x_log || x > 0.0) && (!self.y_log || y > 0.0)
    }

    /// The axes' ranges and the room for event lanes; `None` with nothing to draw.
    fn frame(&self) -> Option<Frame> {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|p| self.usable(p))
            .map(|(x, y)| (self.tx(x), self.ty(y)))
            .collect();
        if pts.is_empty() {
            return None;
        }
        let xs = || pts.iter().map(|p| p.0);
        // Linear x (epochs): from the first point to the last, events and markers
        // included; a single x gets half a unit either side.
        let extra: Vec<f64> = if self.x_log {
            Vec::new()
        } else {
            self.events
                .iter()
                .map(|g| g.epoch as f64 + 1.0)
                .chain(self.vlines.iter().map(|v| v.x))
                .collect()
        };
        let (a, b) = xs()
            .chain(extra)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            });
        let (x0, x1) = if b - a < 1e-9 {
            (a - 0.5, b + 0.5)
        } else {
            (a, b)
        };
        let mut y0 = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let mut y1 = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if let Some((lo, hi)) = self.y_range {
            (y0, y1) = (self.ty(lo), self.ty(hi));
        }
        let pad = if (y1 - y0).abs() < 1e-12 {
            if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 }
        } else {
            (y1 - y0) * 0.06
        };
        // Room at the top for the event lanes.
        let lanes: Vec<&'static str> = super::markers::STYLES
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| self.events.iter().any(|g| g.kind == *k))
            .collect();
        Some(Frame {
            x: (x0, x1),
            y: (y0 - pad, y1 + pad),
            top: MT + 9.0 * lanes.len() as f64,
            lanes,
            clip: format!("c{}", clip_id()),
        })
    }

    /// The clip path, grid and ticks, the frame, the axis labels.
    fn axes(&self, out: &mut String, f: &Frame) {
        let top = f.top;
        // Curves are clipped to the frame (a given y range cuts spikes off).
        let _ = write!(
            out,
            r#"<defs><clipPath id="{}"><rect x="{ML}" y="{top}" width="{}" height="{}"/></clipPath></defs>"#,
            f.clip,
            W - ML - MR,
            H - top - MB
        );
        let (y0, y1) = f.y;
        let yt = if self.y_log {
            log_ticks(y0, y1, 5)
        } else {
            ticks(y0, y1, 5)
        };
        for t in yt {
            let y = f.sy(t);
            let label = if self.y_log { 10f64.powf(t) } else { t };
            let _ = write!(
                out,
                r#"<line class="grid" x1="{ML}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                W - MR,
                ML - 6.0,
                y + 4.0,
                fmt_num(label)
            );
        }
        let (x0, x1) = f.x;
        let xt = if self.x_log {
            log_ticks(x0, x1, 8)
        } else {
            ticks(x0, x1, 8)
        };
        for t in xt.into_iter().filter(|t| !self.x_whole || t.fract() == 0.0) {
            let x = f.sx(t);
            let label = if self.x_log { 10f64.powf(t) } else { t };
            let _ = write!(
                out,
                r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{MT}" y2="{}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                H - MB,
                H - MB + 16.0,
                fmt_num(label)
            );
        }
        let _ = write!(
            out,
            r#"<rect class="frame" x="{ML}" y="{top}" width="{}" height="{}"/><text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>"#,
            W - ML - MR,
            H - top - MB,
            (ML + W - MR) / 2.0,
            H - 4.0,
            esc(self.x_label)
        );
        if !self.y_label.is_empty() {
            let _ = write!(
                out,
                r#"<text class="axis" transform="translate(12 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
                (top + H - MB) / 2.0,
                esc(self.y_label)
            );
        }
    }
}

/// A chart's geometry: its axes' ranges (in axis units, log10 on a log axis), the
/// top of the plotting area below the event lanes, the lanes, the clip path's id.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
    top: f64,
    lanes: Vec<&'static str>,
    clip: String,
}

impl Frame {
    fn sx(&self, x: f64) -> f64 {
        ML + (x - self.x.0) / (self.x.1 - self.x.0) * (W - ML - MR)
    }

    fn sy(&self, y: f64) -> f64 {
        H - MB - (y - self.y.0) / (self.y.1 - self.y.0) * (H - self.top - MB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(
            ticks(0.0, 20.0, 8),
            vec![0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0]
        );
    }

    #[test]
    fn log_ticks_are_decades_or_one_two_five() {
        assert_eq!(
            log_ticks(-7.0, 1.0, 8),
            vec![-7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0]
        );
        let t: Vec<f64> = log_ticks(-1.5, -0.1, 5)
            .iter()
            .map(|t| 10f64.powf(*t))
            .collect();
        let want = [0.05, 0.1, 0.2, 0.5];
        assert_eq!(t.len(), want.len());
        for (a, b) in t.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{t:?}");
        }
    }
}
