//! Reader for numeric CSV files whose last column is the class label, or whose last
//! N columns are real regression targets.

use std::path::Path;

use super::DataError;

/// Rows of a CSV file: `features` holds `rows x width` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable {
    /// Data rows (the header not counted).
    pub rows: usize,
    /// Feature columns per row.
    pub width: usize,
    /// The features, row-major.
    pub features: Vec<f32>,
    /// Classification: one class number per row.
    pub labels: Vec<u32>,
    /// Regression: `rows x n_targets` real targets, row-major.
    pub targets: Vec<f32>,
    /// Target columns per row (0 for classification).
    pub n_targets: usize,
}

/// Parses CSV text: numbers separated by commas, the label (a non-negative integer)
/// last. A first line that is not all numbers is taken as a header and skipped.
/// `path` names the file in errors, with the 1-based line and column.
pub fn parse(text: &str, path: &Path) -> Result<CsvTable, DataError> {
    parse_as(text, path, 0)
}

/// Parses CSV text whose last `targets` columns are real regression targets.
pub fn parse_regression(text: &str, path: &Path, targets: usize) -> Result<CsvTable, DataError> {
    parse_as(text, path, targets.max(1))
}

/// `targets` 0: a class label last; else that many real targets last.
fn parse_as(text: &str, path: &Path, targets: usize) -> Result<CsvTable, DataError> {
    let tail = targets.max(1);
    // A byte order mark (spreadsheet exports) is not part of the first row.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut table = CsvTable {
        rows: 0,
        width: 0,
        features: Vec::new(),
        labels: Vec::new(),
        targets: Vec::new(),
        n_targets: targets,
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        limits(line, i, table.rows, path)?;
        let fields: Vec<&str> = line.split(',').collect();
        let parsed: Vec<Option<f32>> = fields.iter().map(|f| f.trim().parse().ok()).collect();
        if i == 0 && parsed.iter().any(Option::is_none) {
            continue; // a header line
        }
        let at = |col: usize| DataError::at(path, i + 1, col + 1);
        if fields.len() < tail + 1 {
            return Err(at(0)(match targets {
                0 => "a row needs at least one feature and a label".into(),
                n => format!(
                    "a row needs at least one feature and the {n} target column(s) of --targets {n}"
                ),
            }));
        }
        if table.width == 0 {
            table.width = fields.len() - tail;
        } else if fields.len() - tail != table.width {
            return Err(at(0)(format!(
                "ragged row: {} columns, earlier rows have {}",
                fields.len(),
                table.width + tail
            )));
        }
        push_row(&mut table, &fields, &parsed, path, i + 1)?;
    }
    if table.rows == 0 {
        return Err(DataError::bad(path, "no data rows".into()));
    }
    Ok(table)
}

/// Line `i` within the sizes rudder reads: counted before the fields are split out,
/// so a 100 MB line allocates nothing.
fn limits(line: &str, i: usize, rows: usize, path: &Path) -> Result<(), DataError> {
    let columns = line.bytes().filter(|&b| b == b',').count() + 1;
    if columns > super::MAX_FEATURES + 1 {
        return Err(DataError::at(path, i + 1, 1)(format!(
            "{columns} columns: rudder takes at most {} features per example",
            super::MAX_FEATURES
        )));
    }
    if (rows + 1).saturating_mul(columns) > super::MAX_VALUES {
        return Err(DataError::at(path, i + 1, 1)(format!(
            "more than {} values in all: rudder holds at most 2 GiB of data as f32",
            super::MAX_VALUES
        )));
    }
    Ok(())
}

/// Data row `line` into `table`: finite numbers, and a class number for a label.
fn push_row(
    table: &mut CsvTable,
    fields: &[&str],
    parsed: &[Option<f32>],
    path: &Path,
    line: usize,
) -> Result<(), DataError> {
    let at = |col: usize| DataError::at(path, line, col + 1);
    for (col, v) in parsed.iter().enumerate() {
        match v {
            Some(x) if x.is_finite() => {}
            _ if fields[col].trim().parse::<f64>().is_ok_and(f64::is_finite) => {
                return Err(at(col)(format!(
                    "{} is past f32's range (rudder trains on f32: at most 3.4e38 in magnitude)",
                    rudder_core::text::clip(fields[col].trim())
                )));
            }
            _ => {
                return Err(at(col)(format!(
                    "not a finite number: {:?}",
                    rudder_core::text::clip(fields[col].trim())
                )));
            }
        }
    }
    table
        .features
        .extend(parsed[..table.width].iter().map(|v| v.unwrap_or(0.0)));
    table.rows += 1;
    if table.n_targets > 0 {
        table
            .targets
            .extend(parsed[table.width..].iter().map(|v| v.unwrap_or(0.0)));
        return Ok(());
    }
    let label = parsed[table.width].unwrap_or(f32::NAN);
    if label < 0.0 || label.fract() != 0.0 || label > 1e6 {
        let hint = if label.fract() != 0.0 {
            " (real-valued targets: --task regression)"
        } else {
            ""
        };
        return Err(at(table.width)(format!(
            "the label must be a class number 0, 1, 2, ...: got {:?}{hint}",
            rudder_core::text::clip(fields[table.width].trim())
        )));
    }
    table.labels.push(label as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_skips_a_header() {
        let t = parse("a,b,label\n1,2,0\n3.5,-4,2\n", Path::new("t.csv")).unwrap();
        assert_eq!((t.rows, t.width), (2, 2));
        assert_eq!(t.features, vec![1.0, 2.0, 3.5, -4.0]);
        assert_eq!(t.labels, vec![0, 2]);
    }

    #[test]
    fn names_line_and_column_of_a_bad_row() {
        let e = parse("1,2,0\n1,2\n", Path::new("t.csv")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv:2:1: ragged row: 2 columns, earlier rows have 3"
        );
        let e = parse("1,2,0\n1,x,1\n", Path::new("t.csv")).unwrap_err();
        assert_eq!(e.to_string(), "t.csv:2:2: not a finite number: \"x\"");
        let e = parse("1,2,0.5\n", Path::new("t.csv")).unwrap_err();
        assert!(e.to_string().starts_with("t.csv:1:3: the label"), "{e}");
        assert!(
            e.to_string()
                .ends_with("(real-valued targets: --task regression)"),
            "{e}"
        );
    }

    #[test]
    fn regression_takes_the_last_columns_as_real_targets() {
        let t = parse_regression(
            "a,b,y1,y2\n1,2,0.5,-3\n3,4,1e3,7.25\n",
            Path::new("t.csv"),
            2,
        )
        .unwrap();
        assert_eq!((t.rows, t.width, t.n_targets), (2, 2, 2));
        assert_eq!(t.features, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(t.targets, vec![0.5, -3.0, 1000.0, 7.25]);
        let e = parse_regression("1,2\n", Path::new("t.csv"), 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv:1:1: a row needs at least one feature and the 2 target column(s) of --targets 2"
        );
    }
}
