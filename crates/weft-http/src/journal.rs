//! The replay guard's memory across restarts: each accepted token's CID and expiry, one line
//! each, appended before the request is served.
//!
//! Without it a restart would forget which tokens were used, and a token captured from a frame
//! minutes earlier would be accepted again until it expired. The file is rewritten with only the
//! live entries when it opens and whenever dead lines outnumber live ones, so it stays within a
//! few times the guard's own size.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use weft::Cid;

/// Lines written before a rewrite is considered at all.
const REWRITE_FLOOR: usize = 4096;

/// The open journal.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Lines in the file now.
    lines: usize,
}

impl Journal {
    /// Opens the journal at `path` (creating it, readable by its owner only) and returns the
    /// entries still live at `now`: those whose expiry plus `leeway` has not passed. Lines that
    /// do not parse (a write cut short by a crash) are skipped.
    pub(crate) fn open(path: &Path, now: u64, leeway: u64) -> io::Result<(Self, Vec<(Cid, u64)>)> {
        let live: Vec<(Cid, u64)> = match File::open(path) {
            Ok(file) => BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| parse(&line))
                .filter(|(_, exp)| exp.saturating_add(leeway) >= now)
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let file = rewrite(path, live.iter().copied())?;
        Ok((
            Self {
                path: path.to_owned(),
                file,
                lines: live.len(),
            },
            live,
        ))
    }

    /// Appends one accepted token.
    pub(crate) fn record(&mut self, cid: &Cid, exp: u64) -> io::Result<()> {
        // One write per line: a crash cuts at most the last line, which `open` skips.
        self.file.write_all(format!("{cid} {exp}\n").as_bytes())?;
        self.lines += 1;
        Ok(())
    }

    /// Whether the file holds enough dead lines, next to `live` live ones, to be rewritten.
    pub(crate) fn wants_rewrite(&self, live: usize) -> bool {
        self.lines > REWRITE_FLOOR.max(live.saturating_mul(2))
    }

    /// Replaces the file's contents with `live`.
    pub(crate) fn rewrite(
        &mut self,
        live: impl ExactSizeIterator<Item = (Cid, u64)>,
    ) -> io::Result<()> {
        let lines = live.len();
        self.file = rewrite(&self.path, live)?;
        self.lines = lines;
        Ok(())
    }
}

/// Writes `live` to a temporary file beside `path`, renames it over `path` (so a crash leaves
/// the old file or the new one, never half of one), and returns it open for appending.
fn rewrite(path: &Path, live: impl Iterator<Item = (Cid, u64)>) -> io::Result<File> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut out = io::BufWriter::new(create_private(&tmp)?);
        for (cid, exp) in live {
            writeln!(out, "{cid} {exp}")?;
        }
        out.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    OpenOptions::new().append(true).open(path)
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn parse(line: &str) -> Option<(Cid, u64)> {
    let (cid, exp) = line.split_once(' ')?;
    Some((Cid::parse(cid).ok()?, exp.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> Cid {
        Cid::compute(&[n], weft::ucan::HashAlg::Sha2_256)
    }

    #[test]
    fn what_was_recorded_is_read_back_while_it_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.log");
        let (mut journal, live) = Journal::open(&path, 1_000, 60).unwrap();
        assert!(live.is_empty());
        journal.record(&cid(1), 1_100).unwrap();
        journal.record(&cid(2), 1_300).unwrap();
        drop(journal);
        // A crash mid-line leaves a torn last line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"bafkrei").unwrap();
        drop(file);

        let (_, live) = Journal::open(&path, 1_150, 60).unwrap();
        assert_eq!(live, vec![(cid(1), 1_100), (cid(2), 1_300)]);
        let (_, live) = Journal::open(&path, 1_200, 60).unwrap();
        assert_eq!(live, vec![(cid(2), 1_300)], "expired plus leeway: gone");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().count(),
            1,
            "opening rewrote the file with the live lines"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only");
        }
    }

    #[test]
    fn dead_lines_are_rewritten_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.log");
        let (mut journal, _) = Journal::open(&path, 0, 0).unwrap();
        for n in 0..=REWRITE_FLOOR {
            journal.record(&cid((n % 251) as u8), 10).unwrap();
        }
        assert!(journal.wants_rewrite(1));
        journal.rewrite([(cid(1), 10)].into_iter()).unwrap();
        assert!(!journal.wants_rewrite(1));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        journal.record(&cid(2), 10).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
