//! Key files: PKCS#8 PEM on disk, created with mode 0600 and never overwritten.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use crate::{KeyError, Keypair};

/// A PEM Ed25519 key is about 120 bytes; anything past this is not a key and is not read.
const MAX_KEY_FILE: u64 = 16 * 1024;

pub(crate) fn load(path: &Path) -> Result<Keypair, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    // As ssh does: a private key others can read is no longer private, so it is not used.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let len = metadata.len();
    if len > MAX_KEY_FILE {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            len,
        });
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => KeyError::Format {
                path: path.to_owned(),
                reason: "file is not text".into(),
            },
            _ => io(e),
        })?;
    Keypair::from_pkcs8_pem(&text).map_err(|e| match e {
        KeyError::Format { reason, .. } => KeyError::Format {
            path: path.to_owned(),
            reason,
        },
        other => other,
    })
}

pub(crate) fn save(key: &Keypair, path: &Path) -> Result<(), KeyError> {
    let pem = key.to_pkcs8_pem();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Created 0600 from the start: there is no window in which the key is world-readable.
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists(path.to_owned()),
        _ => KeyError::Io {
            path: path.to_owned(),
            source,
        },
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `content` to `path` with mode 0600, as a key file must have.
    fn write_private(path: &Path, content: &[u8]) {
        std::fs::write(path, content).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    #[test]
    fn saves_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.pem");
        let key = Keypair::generate().unwrap();
        key.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(Keypair::load(&path).unwrap().did(), key.did());
        assert!(matches!(key.save(&path), Err(KeyError::Exists(_))));
    }

    #[test]
    #[cfg(unix)]
    fn a_key_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.pem");
        Keypair::generate().unwrap().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keypair::load(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::Exposed { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Keypair::load(&path).is_ok());
    }

    #[test]
    fn clear_errors_for_missing_large_and_binary_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(Keypair::load(&missing), Err(KeyError::Io { .. })));

        let big = dir.path().join("big.pem");
        write_private(&big, &[b'a'; 20_000]);
        assert!(matches!(
            Keypair::load(&big),
            Err(KeyError::TooLarge { .. })
        ));

        let binary = dir.path().join("binary.pem");
        write_private(&binary, &[0xff, 0xfe, 0x00, 0x80]);
        let err = Keypair::load(&binary).unwrap_err();
        assert!(matches!(err, KeyError::Format { .. }), "{err}");
        assert!(err.to_string().contains("binary.pem"));
    }
}
