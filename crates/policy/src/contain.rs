//! The one rule for the files a policy may read: a file's real path (every symlink
//! resolved) must lie inside the real path of the folder it was found in: a search
//! folder, the importing policy's folder, a plugin's folder. A link that leads out,
//! or one that resolves to nothing, is refused before a byte of it is read.

use std::path::{Path, PathBuf};

/// Why a file is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Its real path lies outside the folder.
    Outside,
    /// It (or the folder) does not resolve: a dangling link, a file gone.
    Broken,
}

/// `file`'s real path, if it lies inside `dir`'s.
pub fn real_inside(dir: &Path, file: &Path) -> Result<PathBuf, Escape> {
    let (Ok(root), Ok(real)) = (dir.canonicalize(), file.canonicalize()) else {
        return Err(Escape::Broken);
    };
    if real.starts_with(&root) {
        Ok(real)
    } else {
        Err(Escape::Outside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_out_and_a_dangling_link_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let inside = d.path().join("in");
        let outside = d.path().join("out");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(inside.join("a.rhai"), "").unwrap();
        std::fs::write(outside.join("b.rhai"), "").unwrap();
        std::os::unix::fs::symlink(outside.join("b.rhai"), inside.join("b.rhai")).unwrap();
        std::os::unix::fs::symlink(inside.join("gone.rhai"), inside.join("c.rhai")).unwrap();
        assert!(real_inside(&inside, &inside.join("a.rhai")).is_ok());
        assert_eq!(
            real_inside(&inside, &inside.join("b.rhai")),
            Err(Escape::Outside)
        );
        assert_eq!(
            real_inside(&inside, &inside.join("c.rhai")),
            Err(Escape::Broken)
        );
    }
}
