//! Revocation records kept between runs: each new one is appended, as a line of JSON, to the
//! node's revocations file (the one `weft node --revocations` reads at start), so what the realm
//! told this node survives a restart.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::warn;
use weft_ucan::Revocation;

/// Where new records are written; nowhere when the node has no revocations file.
#[derive(Debug, Clone, Default)]
pub(crate) struct RevocationLog {
    file: Option<Arc<PathBuf>>,
}

impl RevocationLog {
    pub(crate) fn new(file: Option<PathBuf>) -> Self {
        Self {
            file: file.map(Arc::new),
        }
    }

    /// Appends `record`. A failure is logged: the record still applies for this run.
    pub(crate) fn append(&self, record: &Revocation) {
        let Some(path) = &self.file else {
            return;
        };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.as_path())
            .and_then(|mut file| writeln!(file, "{}", record.to_json()));
        if let Err(e) = written {
            warn!(file = %path.display(), error = %e, "cannot keep a revocation record for the next run");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_identity::Keypair;

    #[test]
    fn records_are_appended_one_per_line() {
        let dir = std::env::temp_dir().join(format!("weft-revocations-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("revoked.jsonl");
        let _ = std::fs::remove_file(&path);
        let key = Keypair::generate().unwrap();
        let log = RevocationLog::new(Some(path.clone()));
        for n in 0..2u8 {
            let cid = weft_ucan::Cid::compute(&[n], weft_ucan::HashAlg::Sha2_256);
            log.append(&Revocation::issue_cid(&key, cid));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let records: Vec<Revocation> = text
            .lines()
            .map(|line| Revocation::parse(line).unwrap())
            .collect();
        assert_eq!(records.len(), 2);
        records.iter().for_each(|r| r.verify().unwrap());
        RevocationLog::default().append(&records[0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
