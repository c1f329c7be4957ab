//! `rudder serve [DIR...]`: the dashboard (`rudder-serve`) on the folders given, or
//! `runs/` (made if it is not there yet, so a server started before the first run
//! shows it as it appears). One line says where; it ends on Ctrl-C or SIGTERM.

use std::io::Write;

use crate::cli::ServeOptions;
use crate::error::AppError;

/// Runs `rudder serve`.
pub(crate) fn command(o: ServeOptions) -> Result<(), AppError> {
    let dirs = if o.dirs.is_empty() {
        let runs = std::path::PathBuf::from("runs");
        // A missing default folder is made; an error shows when it is served.
        let _made = std::fs::create_dir_all(&runs);
        vec![runs]
    } else {
        o.dirs.clone()
    };
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut options = rudder_serve::Options::new(dirs);
    options.host = o.host;
    options.port = o.port;
    rudder_serve::serve(options, |ready| {
        if let Some(w) = &ready.warning {
            rudder_core::term::say(&format!("rudder: warning: {w}"));
        }
        let mut out = std::io::stdout().lock();
        let _shown = writeln!(out, "rudder: serving {} at {}", shown.join(", "), ready.url);
        let _flushed = out.flush();
    })?;
    Ok(())
}
