//! `FileStore`: the experiment from a file, the result to a file (written atomically:
//! a temporary file beside it, then a rename, so a reader never sees half a result).

use std::path::{Path, PathBuf};

use super::{Store, StoreError, Stored};
use crate::model::limits::{read_text_capped_async, ReadError, MAX_DOCUMENT_BYTES};
use crate::model::ExperimentResult;

/// A local experiment: spec file in, result file out.
#[derive(Debug, Clone)]
pub struct FileStore {
    experiment: PathBuf,
    result: PathBuf,
    continue_previous: bool,
}

impl FileStore {
    /// A store reading `experiment` and writing `result`. A local run starts fresh;
    /// with `continue_previous` an existing result file is continued as the next loop.
    pub fn new(
        experiment: impl Into<PathBuf>,
        result: impl Into<PathBuf>,
        continue_previous: bool,
    ) -> Self {
        Self {
            experiment: experiment.into(),
            result: result.into(),
            continue_previous,
        }
    }

    pub fn result_path(&self) -> &Path {
        &self.result
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound(format!("{what} {}", path.display())),
        // The user's to fix (exit 2), like a missing file.
        std::io::ErrorKind::PermissionDenied => {
            StoreError::Forbidden(format!("{what} {}: {e}", path.display()))
        }
        _ => StoreError::Io(format!("{what} {}: {e}", path.display())),
    }
}

/// The result is only ever written as a new regular file renamed over `path`: refuse a
/// `path` that is something else (a device such as /dev/null, a FIFO, a symlink, a
/// directory), which the rename would replace.
pub fn check_output_path(path: &Path) -> Result<(), StoreError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("result file", path, e)),
    };
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "a device, FIFO or socket"
    };
    Err(StoreError::Invalid {
        what: format!("result file {}", path.display()),
        message: format!(
            "it is {what}, which writing the result would replace; give -o the path of a \
             regular file (or of a file to create)"
        ),
    })
}

/// Read a result file (`iter8 report` / `assert` use it too).
pub async fn read_result(path: &Path) -> Result<ExperimentResult, StoreError> {
    let text = read_capped_text("result file", path).await?;
    crate::model::result::parse_result(&text).map_err(|message| StoreError::Invalid {
        what: format!("result file {}", path.display()),
        message,
    })
}

/// Read a document of at most [`MAX_DOCUMENT_BYTES`]: an endless file (`/dev/zero`), a
/// directory or a file that is not UTF-8 is an error naming the file.
async fn read_capped_text(what: &str, path: &Path) -> Result<String, StoreError> {
    match read_text_capped_async(path, MAX_DOCUMENT_BYTES).await {
        Ok(t) => Ok(t),
        Err(ReadError::Io(e)) => Err(io_error(what, path, e)),
        Err(e) => Err(StoreError::Invalid {
            what: format!("{what} {}", path.display()),
            message: format!("the file {e}"),
        }),
    }
}

/// Write `contents` to `path` atomically (temporary file in the same directory + rename).
pub async fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    check_output_path(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "result".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut f, contents).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, path).await
    };
    if let Err(e) = write.await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(StoreError::Io(format!(
            "cannot write result file {}: {e}",
            path.display()
        )));
    }
    Ok(())
}

impl Store for FileStore {
    async fn load(&self) -> Result<Stored, StoreError> {
        check_output_path(&self.result)?;
        let experiment_yaml = read_capped_text("experiment file", &self.experiment).await?;
        let previous = if self.continue_previous && self.result.exists() {
            let previous = read_result(&self.result).await?;
            if previous.num_loops == u64::MAX {
                return Err(StoreError::Invalid {
                    what: format!("result file {}", self.result.display()),
                    message: "numLoops is at its maximum (2^64-1); another loop cannot be \
                              counted: start a fresh result (run without --continue)"
                        .into(),
                });
            }
            Some(previous)
        } else {
            None
        };
        Ok(Stored {
            experiment_yaml,
            previous,
            revision: None,
        })
    }

    async fn save(&self, result: &ExperimentResult) -> Result<(), StoreError> {
        let yaml = serde_yaml::to_string(result).map_err(|e| StoreError::Invalid {
            what: "result".into(),
            message: e.to_string(),
        })?;
        write_atomic(&self.result, yaml.as_bytes()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loads_the_experiment_and_writes_the_result_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exp = dir.path().join("experiment.yaml");
        let res = dir.path().join("out").join("result.yaml");
        std::fs::create_dir(dir.path().join("out")).expect("mkdir");
        std::fs::write(&exp, "spec:\n- run: 'true'\n").expect("write");
        let store = FileStore::new(&exp, &res, false);
        let stored = store.load().await.expect("load");
        assert_eq!(stored.experiment_yaml, "spec:\n- run: 'true'\n");
        assert!(stored.previous.is_none());
        let mut r = ExperimentResult::new(1);
        r.num_loops = 4;
        store.save(&r).await.expect("save");
        r.num_completed_tasks = 1;
        store.save(&r).await.expect("save again");
        assert_eq!(read_result(&res).await.expect("read"), r);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("result.yaml")]);
        // Fresh by default; continued with `continue_previous`.
        assert!(store.load().await.expect("load").previous.is_none());
        let cont = FileStore::new(&exp, &res, true);
        assert_eq!(cont.load().await.expect("load").previous, Some(r));
    }

    #[tokio::test]
    async fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.yaml");
        let store = FileStore::new(&missing, dir.path().join("r.yaml"), false);
        let e = store.load().await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)));
        assert!(e.to_string().contains("nope.yaml"), "{e}");

        let exp = dir.path().join("e.yaml");
        std::fs::write(&exp, "spec: []").expect("write");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "numLoops: [").expect("write");
        let e = FileStore::new(&exp, &bad, true).load().await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("invalid result file {}", bad.display())),
            "{e}"
        );

        let store = FileStore::new(&exp, dir.path().join("no-such-dir").join("r.yaml"), false);
        let e = store.save(&ExperimentResult::new(1)).await.unwrap_err();
        assert!(e.to_string().starts_with("cannot write result file"), "{e}");
    }
}
