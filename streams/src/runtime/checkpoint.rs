//! Local checkpoints: per logged store, the next changelog offset the local
//! copy does not reflect. Written at commits (every few thousand records) and
//! at suspension and clean close; a crash restores only what came after.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::StreamsError;

const CHECKPOINT: &str = ".checkpoint";

/// Next changelog offset to read per store, as last written.
pub(crate) fn read(dir: &Path) -> BTreeMap<String, i64> {
    std::fs::read(dir.join(CHECKPOINT))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes the checkpoint atomically (temp file, fsync, rename).
pub(crate) fn write(dir: &Path, offsets: &BTreeMap<String, i64>) -> Result<(), StreamsError> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".checkpoint.tmp");
    let data =
        serde_json::to_vec(offsets).map_err(|e| StreamsError::IllegalState(e.to_string()))?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(CHECKPOINT))?;
    Ok(())
}
