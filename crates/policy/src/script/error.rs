//! Script faults with their place: the innermost `file:line:col` of a rhai error, and
//! the rustc-style rendering (source line, caret under the column) for stderr.

use std::path::PathBuf;

use rhai::{EvalAltResult, Position};

/// The longest message kept from a script error (a thrown value may be a map of
/// megabytes): it is cut there, before it is ever built whole.
pub(crate) const MAX_MESSAGE: usize = 1024;

/// Writes into a string and stops past `MAX_MESSAGE` bytes.
struct Bounded(String);

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = MAX_MESSAGE.saturating_sub(self.0.len());
        if s.len() <= room {
            self.0.push_str(s);
            Ok(())
        } else {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.0.push_str(&s[..cut]);
            Err(std::fmt::Error)
        }
    }
}

/// `v` displayed, at most `MAX_MESSAGE` bytes (`...` when cut).
fn bounded(v: &impl std::fmt::Display) -> String {
    use std::fmt::Write;
    let mut b = Bounded(String::new());
    if write!(b, "{v}").is_err() {
        b.0.push_str("...");
    }
    b.0
}

/// A fault in a policy, at a place in one of its files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{}:{}:{}: {message}", file.display(), line, column)]
pub struct ScriptError {
    pub file: PathBuf,
    /// 1-based; 0 when the fault has no place in a file (a missing file, a budget).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ScriptError {
    pub fn new(file: impl Into<PathBuf>, pos: Position, message: impl Into<String>) -> ScriptError {
        ScriptError {
            file: file.into(),
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
            message: message.into(),
        }
    }

    /// The innermost error and place of a runtime error: nested function calls and
    /// module errors are walked down to where the fault is.
    pub fn from_eval(file: impl Into<PathBuf>, e: &EvalAltResult) -> ScriptError {
        let mut file: PathBuf = file.into();
        let mut e = e;
        loop {
            match e {
                EvalAltResult::ErrorParsing(..) => break,
                EvalAltResult::ErrorInFunctionCall(_, src, inner, _)
                | EvalAltResult::ErrorInModule(src, inner, _) => {
                    if !src.is_empty() {
                        file = PathBuf::from(src.as_str());
                    }
                    e = inner;
                }
                _ => break,
            }
        }
        let message = match e {
            EvalAltResult::ErrorTooManyOperations(_) => format!(
                "ran out of its budget of {} operations (an endless loop?)",
                crate::limits::MAX_OPERATIONS
            ),
            EvalAltResult::ErrorTerminated(token, _)
                if token.clone().into_string().ok().as_deref()
                    == Some(super::host::OUT_OF_MEMORY) =>
            {
                format!(
                    "allocated more than its budget of {} MiB of memory",
                    crate::limits::MAX_MEMORY >> 20
                )
            }
            EvalAltResult::ErrorTerminated(..) => format!(
                "ran out of its time budget of {} s (an endless loop?)",
                crate::limits::TIME_BUDGET.as_secs_f64()
            ),
            // `throw "text"`, and the resolver's refusals: the text alone.
            EvalAltResult::ErrorRuntime(v, _) if v.is_string() => bounded(v),
            EvalAltResult::ErrorStackOverflow(_) => {
                "too deep: the call stack overflowed (endless recursion?)".to_string()
            }
            other => {
                let mut m = bounded(other);
                // rhai appends " (line L, position C)"; the place is ours to print.
                if let Some(i) = m.rfind(" (line ") {
                    m.truncate(i);
                }
                m
            }
        };
        ScriptError::new(file, e.position(), message)
    }

    /// When rhai gave no place (budgets, module resolution), the first occurrence of
    /// `needle` in `source` is the best one there is.
    pub fn or_place(mut self, source: &str, needle: &str) -> ScriptError {
        if self.line == 0
            && let Some((i, line)) = source.lines().enumerate().find(|(_, l)| l.contains(needle))
        {
            self.line = i + 1;
            self.column = line
                .find(needle)
                .map_or(1, |c| line[..c].chars().count() + 1);
        }
        self
    }

    /// `file:line:col: message`, then the source line and a caret, like rustc. The
    /// line comes from `source`, the text the policy was compiled from (the file on
    /// disk may have changed since, or now be something else).
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = format!("error: {}", crate::text::one_line(&self.to_string()));
        if self.line > 0
            && let Some(text) = source
            && let Some(src) = text.lines().nth(self.line - 1)
        {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            let caret = " ".repeat(self.column.saturating_sub(1));
            let src = crate::text::one_line(src);
            out.push_str(&format!("\n{pad} |\n{num} | {src}\n{pad} | {caret}^"));
        }
        out
    }
}
