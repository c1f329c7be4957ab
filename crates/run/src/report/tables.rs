//! Tables a page adds below its charts: a plain one (every cell escaped) and a
//! heatmap of one metric over two settings, each cell shaded by its rank.

use std::fmt::Write;

use super::esc;

/// A table with a caption: `head` and each of `rows`, every cell escaped.
pub fn table(caption: &str, head: &[String], rows: &[Vec<String>]) -> String {
    let mut html = format!("<table><caption>{}</caption><tr>", esc(caption));
    for h in head {
        let _ = write!(html, "<th>{}</th>", esc(h));
    }
    html.push_str("</tr>");
    for r in rows {
        html.push_str("<tr>");
        for c in r {
            let _ = write!(html, "<td>{}</td>", esc(c));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

/// A heatmap: `cells[i][j]` is the metric at row value `rows.1[i]` and column value
/// `cols.1[j]` (`None`: no finite value), shown with `fmt` and shaded from green
/// (best) to white (worst) by rank; `lower_is_better` says which end is best.
pub fn heatmap(
    caption: &str,
    rows: (&str, &[String]),
    cols: (&str, &[String]),
    cells: &[Vec<Option<f64>>],
    lower_is_better: bool,
    fmt: impl Fn(f64) -> String,
) -> String {
    let mut values: Vec<f64> = cells.iter().flatten().flatten().copied().collect();
    values.sort_by(|a, b| a.total_cmp(b));
    if !lower_is_better {
        values.reverse();
    }
    let rank = |v: f64| {
        let i = values.iter().position(|x| *x == v).unwrap_or(0);
        if values.len() < 2 {
            1.0
        } else {
            1.0 - i as f64 / (values.len() - 1) as f64
        }
    };
    let mut html = format!(
        "<table class=\"heatmap\"><caption>{}</caption><tr><th>{} \\ {}</th>",
        esc(caption),
        esc(rows.0),
        esc(cols.0)
    );
    for c in cols.1 {
        let _ = write!(html, "<th>{}</th>", esc(c));
    }
    html.push_str("</tr>");
    for (i, r) in rows.1.iter().enumerate() {
        let _ = write!(html, "<tr><th>{}</th>", esc(r));
        for j in 0..cols.1.len() {
            match cells.get(i).and_then(|row| row.get(j)).copied().flatten() {
                Some(v) => {
                    // From white (worst) to a green of the palette (best).
                    let t = rank(v);
                    let (r, g, b) = (
                        255.0 - t * (255.0 - 46.0),
                        255.0 - t * (255.0 - 160.0),
                        255.0 - t * (255.0 - 67.0),
                    );
                    let _ = write!(
                        html,
                        "<td style=\"background:rgb({:.0},{:.0},{:.0})\">{}</td>",
                        r,
                        g,
                        b,
                        esc(&fmt(v))
                    );
                }
                None => html.push_str("<td>-</td>"),
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_escaped_and_the_best_is_the_greenest() {
        let t = table("a <b>", &["<h>".into()], &[vec!["x&y".into()]]);
        assert!(t.contains("a &lt;b&gt;") && t.contains("&lt;h&gt;") && t.contains("x&amp;y"));
        let h = heatmap(
            "val_loss",
            ("batch_size", &["32".into(), "64".into()]),
            ("lr", &["0.1".into()]),
            &[vec![Some(0.5)], vec![Some(0.2)]],
            true,
            |v| format!("{v}"),
        );
        assert!(h.contains("rgb(46,160,67)\">0.2<"), "{h}");
        assert!(h.contains("rgb(255,255,255)\">0.5<"), "{h}");
    }
}
