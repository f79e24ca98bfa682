//! The `weft` binary as a user runs it: the `id` and `ucan` commands of contract §5
//! (`docs/contract.md`), their output and exit codes, and hostile input that must get one clear
//! line on stderr and never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn weft(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env_remove("WEFT_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run weft");
    Run {
        code: status.code().expect("exited normally, not by a signal"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

impl Run {
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self.stdout.trim().to_owned()
    }

    /// Failed with `code` and exactly one line on stderr.
    fn fails(self, code: i32) -> String {
        assert_eq!(
            self.code, code,
            "stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        assert_eq!(
            self.stderr.trim().lines().count(),
            1,
            "one line expected: {:?}",
            self.stderr
        );
        self.stderr
    }
}

fn new_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let did = weft(&["id", "new", "--out", path.to_str().unwrap()]).ok();
    (path, did)
}

#[test]
fn id_new_writes_a_private_0600_key_and_show_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, did) = new_key(dir.path(), "node.pem");
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        weft(&["id", "show", "--key", path.to_str().unwrap()]).ok(),
        did
    );
    let err = weft(&["id", "new", "--out", path.to_str().unwrap()]).fails(1);
    assert!(err.contains("exists"), "{err}");
}

#[test]
fn id_show_reads_keys_written_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openssl.pem");
    // `openssl genpkey -algorithm ed25519`; the DID is what weft-identity computes for its seed.
    write_private(
        &path,
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEICjuUItBo4v3IZx8sBpPWnQl1PJDrrm5Y72tGCc7pKnR\n-----END PRIVATE KEY-----\n",
    );
    let did = weft(&["id", "show", "--key", path.to_str().unwrap()]).ok();
    assert!(did.starts_with("did:key:z6Mk") && did.len() == 56, "{did}");
}

#[test]
fn wrong_key_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 4] = [
        ("text.pem", b"hello\n"),
        ("binary.pem", &[0xff, 0x00, 0xfe, 0x80]),
        ("public.pem", b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"),
        ("empty.pem", b""),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        write_private(&path, content);
        let err = weft(&["id", "show", "--key", path.to_str().unwrap()]).fails(1);
        assert!(err.contains(name), "{err}");
    }
    let huge = dir.path().join("huge.pem");
    write_private(&huge, &vec![b'A'; 10 * 1024 * 1024]);
    // A real key that others can read is refused, with the fix.
    let (exposed, _) = new_key(dir.path(), "exposed.pem");
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = weft(&["id", "show", "--key", exposed.to_str().unwrap()]).fails(1);
    assert!(err.contains("chmod 600"), "{err}");
    weft(&["id", "show", "--key", huge.to_str().unwrap()]).fails(1);
    weft(&[
        "id",
        "show",
        "--key",
        dir.path().join("missing.pem").to_str().unwrap(),
    ])
    .fails(1);
}

#[test]
fn issue_verify_cid_and_inspect_a_delegation_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, owner_did) = new_key(dir.path(), "owner.pem");
    let (team, team_did) = new_key(dir.path(), "team.pem");
    let (_, service_did) = new_key(dir.path(), "service.pem");

    let root = weft(&[
        "ucan",
        "issue",
        "--key",
        owner.to_str().unwrap(),
        "--aud",
        &team_did,
        "--cap",
        "weft://io.acme/orders.*=rpc/call",
        "--exp",
        "3600",
        "--nonce",
        "n1",
        "--fact",
        r#"{"purpose":"test"}"#,
    ])
    .ok();
    assert_eq!(weft(&["ucan", "verify", &root]).ok(), "valid");

    let inspected: Value = serde_json::from_str(&weft(&["ucan", "inspect", &root]).ok()).unwrap();
    assert_eq!(inspected["header"]["alg"], "EdDSA");
    assert_eq!(inspected["payload"]["iss"], owner_did.as_str());
    assert_eq!(inspected["payload"]["aud"], team_did.as_str());
    assert_eq!(inspected["payload"]["nnc"], "n1");
    assert_eq!(inspected["payload"]["fct"]["purpose"], "test");
    assert_eq!(
        inspected["payload"]["cap"]["weft://io.acme/orders.*"]["rpc/call"],
        serde_json::json!([{}])
    );

    let cid = weft(&["ucan", "cid", &root]).ok();
    assert!(cid.starts_with("bafkrei") && cid.len() == 59, "{cid}");
    assert!(
        weft(&["ucan", "cid", &root, "--hash", "blake3"])
            .ok()
            .starts_with("bafkr4i")
    );

    // Re-delegate a narrower capability, citing the root as proof (inline and from a file).
    let root_file = dir.path().join("root.jwt");
    std::fs::write(&root_file, format!("{root}\n")).unwrap();
    let root_arg = format!("@{}", root_file.display());
    let leaf = weft(&[
        "ucan",
        "issue",
        "--key",
        team.to_str().unwrap(),
        "--aud",
        &service_did,
        "--cap",
        "weft://io.acme/orders.get=rpc/call",
        "--exp",
        "600",
        "--proof",
        &root_arg,
    ])
    .ok();
    let payload: Value = serde_json::from_str(&weft(&["ucan", "inspect", &leaf]).ok()).unwrap();
    assert_eq!(payload["payload"]["prf"], serde_json::json!([cid]));
    assert_eq!(
        weft(&["ucan", "verify", &leaf, "--proof", &root]).ok(),
        "valid"
    );

    let run = weft(&["ucan", "verify", &leaf, "--json"]);
    assert_eq!(run.code, 1);
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["error"], "incorrectProofs");

    let run = weft(&["ucan", "verify", &leaf, "--proof", &root, "--json"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout.trim(),
        r#"{"detail":null,"error":null,"valid":true}"#
    );

    // Without --exp, a delegation lasts a day but never past its proof.
    let clamped = weft(&[
        "ucan",
        "issue",
        "--key",
        team.to_str().unwrap(),
        "--aud",
        &service_did,
        "--cap",
        "weft://io.acme/orders.get=rpc/call",
        "--proof",
        &root,
    ])
    .ok();
    let exp = |t: &str| {
        serde_json::from_str::<Value>(&weft(&["ucan", "inspect", t]).ok()).unwrap()["payload"]["exp"].clone()
    };
    assert_eq!(exp(&clamped), exp(&root));
    assert_eq!(
        weft(&["ucan", "verify", &clamped, "--proof", &root]).ok(),
        "valid"
    );

    // Widening is refused when issuing, with the contract's code.
    let err = weft(&[
        "ucan",
        "issue",
        "--key",
        team.to_str().unwrap(),
        "--aud",
        &service_did,
        "--cap",
        "weft://io.acme/**=rpc/call",
        "--proof",
        &root,
    ])
    .fails(1);
    assert!(err.contains("invalidDelegation"), "{err}");
}

#[test]
fn verify_reports_time_with_now() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _) = new_key(dir.path(), "owner.pem");
    let (_, aud) = new_key(dir.path(), "aud.pem");
    let token = weft(&[
        "ucan",
        "issue",
        "--key",
        owner.to_str().unwrap(),
        "--aud",
        &aud,
        "--cap",
        "weft://io.acme=realm/join",
        "--nbf",
        "2000000000",
        "--exp",
        "never",
    ])
    .ok();
    let report = |now: &str| {
        let run = weft(&["ucan", "verify", &token, "--now", now, "--json"]);
        serde_json::from_str::<Value>(run.stdout.trim()).unwrap()["error"].clone()
    };
    assert_eq!(report("1000000000"), "notReady");
    assert_eq!(report("2000000000"), Value::Null);
}

#[test]
fn hostile_tokens_get_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _) = new_key(dir.path(), "owner.pem");
    let (_, aud) = new_key(dir.path(), "aud.pem");
    let good = weft(&[
        "ucan",
        "issue",
        "--key",
        owner.to_str().unwrap(),
        "--aud",
        &aud,
        "--exp",
        "60",
    ])
    .ok();

    let truncated = &good[..good.len() / 2];
    let not_base64 = good.replacen('e', "!", 1);
    let big = "A".repeat(100_000);
    for token in ["garbage", "a.b.c", "...", truncated, &not_base64, &big] {
        for command in ["verify", "cid", "inspect"] {
            weft(&["ucan", command, token]).fails(1);
        }
    }
    // A 10 MB token file is read only up to the token limit.
    let huge = dir.path().join("huge.jwt");
    std::fs::write(&huge, vec![b'A'; 10 * 1024 * 1024]).unwrap();
    let err = weft(&["ucan", "verify", &format!("@{}", huge.display())]).fails(1);
    assert!(err.contains("malformed"), "{err}");
    weft(&["ucan", "verify", "@/definitely/not/here"]).fails(1);
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    weft(&["ucan", "frobnicate"]).fails(2);
    weft(&["ucan", "verify"]).fails(2);
    weft(&["id", "new"]).fails(2);
    weft(&["ucan", "cid", "a.b.c", "--hash", "md5"]).fails(2);
    let dir = tempfile::tempdir().unwrap();
    let (key, did) = new_key(dir.path(), "k.pem");
    let key = key.to_str().unwrap();
    weft(&[
        "ucan",
        "issue",
        "--key",
        key,
        "--aud",
        "did:web:example.com",
    ])
    .fails(2);
    weft(&[
        "ucan",
        "issue",
        "--key",
        key,
        "--aud",
        &did,
        "--cap",
        "no-equals",
    ])
    .fails(2);
    weft(&[
        "ucan",
        "issue",
        "--key",
        key,
        "--aud",
        &did,
        "--cap",
        "weft://io.acme/x=rpc/cal",
    ])
    .fails(2);
    weft(&[
        "ucan",
        "issue",
        "--key",
        key,
        "--aud",
        &did,
        "--cap",
        "weft://Bad/x=rpc/call",
    ])
    .fails(2);
    weft(&[
        "ucan", "issue", "--key", key, "--aud", &did, "--exp", "soon",
    ])
    .fails(2);
    weft(&[
        "ucan", "issue", "--key", key, "--aud", &did, "--fact", "[1]",
    ])
    .fails(2);
    assert!(weft(&["--help"]).ok().contains("ucan"));
}

/// Every verify and refute fixture, through `weft ucan verify --json`.
#[test]
fn fixtures_through_the_cli() {
    let Some(dir) = std::env::var_os("WEFT_FIXTURES") else {
        eprintln!("skipping: WEFT_FIXTURES is not set (it points at shared/fixtures)");
        return;
    };
    for (file, valid) in [("verify.json", true), ("refute.json", false)] {
        let path = PathBuf::from(&dir).join("ucan-0.10").join(file);
        let cases: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for case in cases {
            let mut args = vec![
                "ucan".to_owned(),
                "verify".to_owned(),
                case["inputs"]["token"].as_str().unwrap().to_owned(),
            ];
            for proof in case["inputs"]["proofs"].as_object().unwrap().values() {
                args.extend(["--proof".to_owned(), proof.as_str().unwrap().to_owned()]);
            }
            args.push("--json".to_owned());
            let run = weft(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
            assert_eq!(report["valid"], valid, "{}: {report}", case["name"]);
            assert_eq!(run.code, if valid { 0 } else { 1 });
            if !valid {
                assert_eq!(report["error"], case["errors"][0], "{}", case["name"]);
            }
        }
    }
}

/// A configuration file with an unknown key stops `weft node` before it starts anything: exit 2,
/// one line naming the file and the key, nothing on stdout (where a node prints its addresses).
#[test]
fn node_refuses_a_config_file_with_an_unknown_key() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "listen = [\"127.0.0.1:0\"]\nlistn = [\"127.0.0.1:0\"]\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["node", "--config", path.to_str().unwrap()])
        .env_remove("WEFT_LOG")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run weft");
    // A node that did start would serve until killed: never wait for it forever.
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("weft node started despite the bad config");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let run = Run {
        code: status.code().expect("exited normally, not by a signal"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    assert_eq!(run.stdout, "", "nothing started");
    let err = run.fails(2);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("`listn`"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

/// `weft ucan revoke` prints a signed UCAN 0.10 record; `weft node --revocations` refuses a file
/// with a broken record, naming its line.
#[test]
fn ucan_revoke_prints_a_record_and_a_node_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _) = new_key(dir.path(), "owner.pem");
    let (_, holder) = new_key(dir.path(), "holder.pem");
    let token = weft(&[
        "ucan",
        "issue",
        "--key",
        owner.to_str().unwrap(),
        "--aud",
        &holder,
        "--cap",
        "weft://io.acme=realm/join",
    ])
    .ok();
    let record = weft(&["ucan", "revoke", "--key", owner.to_str().unwrap(), &token]).ok();
    let parsed: Value = serde_json::from_str(&record).unwrap();
    let cid = weft(&["ucan", "cid", &token]).ok();
    assert_eq!(parsed["revoke"], cid.as_str());
    assert!(parsed["iss"].as_str().unwrap().starts_with("did:key:z6Mk"));
    assert!(parsed["challenge"].as_str().unwrap().len() > 80);

    let broken = dir.path().join("revoked.jsonl");
    std::fs::write(&broken, format!("# revoked\n{record}\n{{\"iss\":1}}\n")).unwrap();
    let err = weft(&["node", "--revocations", broken.to_str().unwrap()]).fails(2);
    assert!(err.contains("line 3"), "{err}");
}

/// Writes `content` to `path` with mode 0600, as a key file must have.
fn write_private(path: &std::path::Path, content: &[u8]) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `weft bench mesh` on a small mesh: every publication reaches every matching subscription
/// once, every call is answered, and the report has the fields contract §6 names.
#[test]
fn bench_mesh_reports_every_delivery_and_call_of_a_small_mesh() {
    let out = weft(&[
        "bench",
        "mesh",
        "--nodes",
        "6",
        "--publications",
        "100",
        "--calls",
        "10",
        "--converge-within",
        "60",
        "--json",
    ])
    .ok();
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["bench"], "mesh");
    assert_eq!(report["nodes"], 6);
    assert!(report["converged_ms"].is_u64(), "{report}");
    assert!(
        report["expected_deliveries"].as_u64().unwrap() > 100,
        "{report}"
    );
    assert_eq!(
        report["delivered"], report["expected_deliveries"],
        "{report}"
    );
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(report["subscriptions_short"], 0, "{report}");
    assert_eq!(
        report["members_fewest"], 5,
        "each holds every other: {report}"
    );
    assert_eq!(report["batches_repaired"], 0, "no overlay in a full mesh");
    assert_eq!(report["calls_ok"], 10, "{report}");
    assert_eq!(report["max_connections_per_node"], 5, "a full mesh, today");
    assert!(report["rss_kib_per_node"].is_u64(), "{report}");
    assert!(report["idle_cpu_percent"].is_f64(), "{report}");
    assert_eq!(
        report["lookups_ok"], 10,
        "every lookup found a provider: {report}"
    );
    assert!(report["lookup_p50_ms"].is_f64(), "{report}");
    assert!(report["threads"].as_u64().unwrap() > 6, "{report}");
}
