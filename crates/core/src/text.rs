//! Text for people: errors kept on one line, input quoted at most [`QUOTE_MAX`]
//! characters, the nearest name to a misspelt one, numbers as a message shows them.

/// `text` on one line: control characters (a newline inside a quoted key of a bad
/// file, say) are written escaped, so an error stays the one line the CLI promises.
pub fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The most of someone's input an error message quotes (the book's Limits page,
/// docs/src/reference/limits.md).
pub const QUOTE_MAX: usize = 80;

/// `text` cut to [`QUOTE_MAX`] characters (with `...` when cut), on one line.
pub fn clip(text: &str) -> String {
    let line = one_line(text);
    if line.chars().count() <= QUOTE_MAX {
        return line;
    }
    let mut cut: String = line.chars().take(QUOTE_MAX - 3).collect();
    cut.push_str("...");
    cut
}

/// The candidate nearest to `word` by edit distance, ignoring case (`t_max` finds
/// `T_max`), if near enough to be what was meant (at most a third of its length, and
/// at least 2, apart); of equally near ones, the first.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    let limit = (word.chars().count() / 3).max(2);
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&word, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `msg` with every double-quoted part cut to [`QUOTE_MAX`] characters (serde's
/// messages quote the offending value whole).
pub fn clip_quoted(msg: &str) -> String {
    msg.split('"')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                clip(part)
            } else {
                one_line(part)
            }
        })
        .collect::<Vec<_>>()
        .join("\"")
}

/// A metric as a progress line, a summary or a table shows it: four decimals where
/// that keeps at most seven significant digits (`0.9785`, `-12.3456`), else four
/// significant digits with an exponent (`1.943e27`, `-9.600e-70`); `nan`, `inf`.
/// Aligned columns stay aligned, and no value prints dozens of digits.
pub fn fmt_metric(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        format!("{v}").to_lowercase()
    } else if a == 0.0 || (1e-3..1e3).contains(&a) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

/// A number as a message or a chart label shows it: at most 4 decimals, trailing
/// zeros dropped, an exponent for the very small and very large (`0.0898`, `1e-5`,
/// `2.5e-5`).
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        // 1.0e-4 reads as 1e-4.
        format!("{v:.1e}").replace(".0e", "e")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A count with its noun, singular for one: `1 epoch`, `3 epochs`, `0 epochs`.
pub fn plural(n: i64, noun: &str) -> String {
    if n == 1 || n == -1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_print_a_few_digits_whatever_their_size() {
        let cases = [
            (0.97851, "0.9785"),
            (0.0, "0.0000"),
            (-12.34561, "-12.3456"),
            (-1942877425188728697457213440.0, "-1.943e27"),
            (f32::MAX as f64, "3.403e38"),
            (-9.6e-70, "-9.600e-70"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (v, shown) in cases {
            assert_eq!(fmt_metric(v), shown, "{v}");
        }
        assert_eq!(fmt_num(0.6135907273413176), "0.6136");
        assert_eq!(plural(1, "epoch"), "1 epoch");
        assert_eq!(plural(0, "epoch"), "0 epochs");
        assert_eq!(plural(6, "epoch"), "6 epochs");
    }
}
