//! The reader against real SOPS documents (tests/fixtures/sops, README there): labctl's own
//! fixture and documents sops 3.11.0 encrypted (make.sh), changed by hand where a test says so.

use std::path::Path;

use super::{AgeIdentities, LocalSecrets, SecretResolver};
use crate::error::{Error, ErrorKind};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../tests/fixtures/sops");

/// labctl's test key (GilmanLab/platform `tools/labctl/cmd/labctl/testdata/script/secrets_get.txtar`).
const LABCTL_KEY: &str =
    "AGE-SECRET-KEY-1NK7RF4CDV8HQXZZYJKRR3T3K6Z3QXRYF6F5WZW3Q2FC5FZ8FKDQQVVTSEG";
const LABCTL_RECIPIENT: &str = "age1kyhuwhlh8n7z3s58u6sv52uwwp7n5txltnpavqxp4jfcudw84ers86a87x";
/// Another age key: getsops/sops `age/keysource_test.go` `mockOtherIdentity`.
const OTHER_KEY: &str =
    "AGE-SECRET-KEY-1432K5YRNSC44GC4986NXMX6GVZ52WTMT9C79CLUVWYY4DKDHD5JSNDP4MC";

const KEYCLOAK: &str = "network/keycloak.sops.yaml";

fn keys(inline: &str) -> AgeIdentities {
    AgeIdentities::from_sources(Some(inline), None, None).unwrap()
}

fn fixtures(sub: &str) -> LocalSecrets {
    LocalSecrets::new(Path::new(FIXTURES).join(sub), keys(LABCTL_KEY))
}

fn get(secrets: &LocalSecrets, path: &str, pointer: &str) -> String {
    secrets.resolve(path, pointer).unwrap().expose().to_string()
}

/// A copy of the fixture `rel` (under tests/fixtures/sops) as `doc.sops.yaml` in a fresh
/// checkout, changed by `edit`, which must change it.
fn edited(rel: &str, edit: impl FnOnce(&str) -> String) -> (tempfile::TempDir, LocalSecrets) {
    let original = std::fs::read_to_string(Path::new(FIXTURES).join(rel)).unwrap();
    let changed = edit(&original);
    assert_ne!(changed, original, "the edit changed nothing");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("doc.sops.yaml"), changed).unwrap();
    let secrets = LocalSecrets::new(dir.path(), keys(LABCTL_KEY));
    (dir, secrets)
}

/// The error, checked to name no secret value and no key.
fn refused(secrets: &LocalSecrets, path: &str, pointer: &str) -> Error {
    let error = secrets.resolve(path, pointer).unwrap_err();
    let message = error.to_string();
    for secret in [
        "test-secret",
        "tok-123",
        LABCTL_KEY,
        OTHER_KEY,
        "BEGIN CERTIFICATE",
    ] {
        assert!(!message.contains(secret), "{message}");
    }
    error
}

#[test]
fn labctl_keycloak_document_decrypts_to_labctls_expected_output() {
    let repo = fixtures("repo");
    assert_eq!(get(&repo, KEYCLOAK, "/database/username"), "admin");
    assert_eq!(get(&repo, KEYCLOAK, "/database/password"), "test-secret");
    // Every string of labctl's expected JSON rendering, at its pointer.
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURES).join("expected/keycloak.json")).unwrap(),
    )
    .unwrap();
    for pointer in [
        "/database/username",
        "/database/password",
        "/servers/0/name",
    ] {
        assert_eq!(
            get(&repo, KEYCLOAK, pointer),
            expected.pointer(pointer).unwrap().as_str().unwrap()
        );
    }
}

#[test]
fn bootstrap_client_certificate_is_the_pem_at_client_crt_pem() {
    let expected =
        std::fs::read_to_string(Path::new(FIXTURES).join("expected/bootstrap-client.crt")).unwrap();
    let pem = get(
        &fixtures("repo"),
        "compute/incusos/bootstrap-client.sops.yaml",
        "/client_crt_pem",
    );
    assert_eq!(pem, expected);
}

#[test]
fn whole_document_and_non_string_pointers_are_refused() {
    let repo = fixtures("repo");
    for (pointer, says) in [
        ("", "not the whole document"),
        ("/database", "a mapping, not a string"),
        ("/servers", "a list, not a string"),
        ("/servers/0/port", "a number, not a string"),
    ] {
        let error = refused(&repo, KEYCLOAK, pointer);
        assert!(matches!(error, Error::SecretPointer { .. }), "{error}");
        assert_eq!(error.kind(), ErrorKind::BadInput);
        assert!(error.to_string().contains(says), "{error}");
    }
}

#[test]
fn missing_and_malformed_pointers_are_refused() {
    let repo = fixtures("repo");
    for pointer in [
        "/database/nope",
        "/servers/5/name",
        "/servers/x",
        "/database/username/deeper",
        "database/username",
        "/database~2",
    ] {
        let error = refused(&repo, KEYCLOAK, pointer);
        assert!(
            matches!(error, Error::SecretPointer { .. }),
            "{pointer}: {error}"
        );
        assert_eq!(error.kind(), ErrorKind::BadInput);
    }
}

#[test]
fn paths_out_of_the_checkout_are_refused_before_reading() {
    // No checkout and no keys: a refusal here is the path rule's, not a read's.
    let nowhere = LocalSecrets::new(
        "/nonexistent/secrets",
        AgeIdentities::from_sources(None, None, None).unwrap(),
    );
    for path in [
        "../keycloak.sops.yaml",
        "network/../../keycloak.sops.yaml",
        "/etc/passwd",
        "network\\keycloak.sops.yaml",
        "C:/secrets/a.yaml",
        "",
        "./",
    ] {
        let error = refused(&nowhere, path, "/a");
        assert!(matches!(error, Error::SecretPath { .. }), "{path}: {error}");
        assert_eq!(error.kind(), ErrorKind::BadInput);
    }
    // labctl's wording for the `..` case.
    assert!(refused(&nowhere, "../a", "/a").to_string().contains("'..'"));
    // A pointer is checked before reading too.
    assert!(matches!(
        refused(&nowhere, KEYCLOAK, "database"),
        Error::SecretPointer { .. }
    ));
}

#[test]
fn a_missing_document_is_bad_input() {
    let error = refused(&fixtures("repo"), "network/missing.sops.yaml", "/a");
    assert!(matches!(error, Error::SecretPath { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::BadInput);
    // A checkout that does not exist: the same (the checkout is canonicalized first).
    let error = refused(&fixtures("no-such-checkout"), KEYCLOAK, "/a");
    assert!(matches!(error, Error::SecretPath { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::BadInput);
    // A clean path is read: `./` and doubled slashes are dropped as labctl's path.Clean does.
    assert_eq!(
        get(
            &fixtures("repo"),
            "./network//keycloak.sops.yaml",
            "/database/username"
        ),
        "admin"
    );
}

#[test]
fn another_age_key_is_refused_naming_the_recipient() {
    let secrets = LocalSecrets::new(Path::new(FIXTURES).join("repo"), keys(OTHER_KEY));
    let error = refused(&secrets, KEYCLOAK, "/database/password");
    assert!(
        matches!(error, Error::AgeKeyMismatch { count: 1, .. }),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::BadInput);
    assert!(error.to_string().contains(LABCTL_RECIPIENT), "{error}");
}

#[test]
fn no_age_key_is_refused_saying_where_keys_are_looked_for() {
    let config = tempfile::tempdir().unwrap();
    let default = AgeIdentities::default_file(config.path());
    let none = AgeIdentities::from_sources(None, None, Some(&default)).unwrap();
    assert!(none.is_empty());
    let secrets = LocalSecrets::new(Path::new(FIXTURES).join("repo"), none);
    let error = refused(&secrets, KEYCLOAK, "/database/password");
    assert!(matches!(error, Error::NoAgeKey { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::BadInput);
    let message = error.to_string();
    for place in [
        "$SOPS_AGE_KEY",
        "$SOPS_AGE_KEY_FILE",
        &default.display().to_string(),
    ] {
        assert!(message.contains(place), "{message}");
    }
    assert!(default.ends_with("sops/age/keys.txt"));
}

#[test]
fn keys_come_from_the_key_file_the_default_file_and_several_inline() {
    let config = tempfile::tempdir().unwrap();
    let default = AgeIdentities::default_file(config.path());
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(
        &default,
        format!("# created: by age-keygen\n{LABCTL_KEY}\n"),
    )
    .unwrap();
    let key_file = config.path().join("other.txt");
    std::fs::write(&key_file, format!("{OTHER_KEY}\r\n")).unwrap();
    let read = |ids: AgeIdentities| {
        get(
            &LocalSecrets::new(Path::new(FIXTURES).join("repo"), ids),
            KEYCLOAK,
            "/database/password",
        )
    };
    let from_default = AgeIdentities::from_sources(None, Some(&key_file), Some(&default)).unwrap();
    assert_eq!(from_default.len(), 2);
    assert_eq!(read(from_default), "test-secret");
    let from_file = AgeIdentities::from_sources(None, Some(&default), None).unwrap();
    assert_eq!(read(from_file), "test-secret");
    assert_eq!(
        read(keys(&format!("{OTHER_KEY} {LABCTL_KEY}"))),
        "test-secret"
    );
    // `{:?}` shows no key.
    assert!(!format!("{:?}", keys(LABCTL_KEY)).contains("AGE-SECRET-KEY"));
}

#[test]
fn unusable_key_sources_are_refused_naming_the_line_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let error = AgeIdentities::from_sources(None, Some(&missing), None).unwrap_err();
    assert!(matches!(error, Error::AgeKeySource { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::BadInput);

    let mangled = format!("{LABCTL_KEY}\n{}X\n", &OTHER_KEY[..OTHER_KEY.len() - 1]);
    let error = AgeIdentities::from_sources(Some(&mangled), None, None).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("line 2"), "{message}");
    // Neither key's body (the message may name the form, AGE-SECRET-KEY-1…).
    assert!(!message.contains(&OTHER_KEY[16..40]), "{message}");
    assert!(!message.contains(&LABCTL_KEY[16..40]), "{message}");

    let plugin =
        AgeIdentities::from_sources(Some("AGE-PLUGIN-YUBIKEY-1QQQ"), None, None).unwrap_err();
    assert!(plugin.to_string().contains("X25519 keys"), "{plugin}");
}

#[test]
fn a_changed_ciphertext_byte_fails_its_gcm_tag() {
    let (_dir, secrets) = edited(&format!("repo/{KEYCLOAK}"), |doc| {
        doc.replacen("data:Y45qePend/wbEiI=", "data:Y45qePend/wbEiY=", 1)
    });
    let error = refused(&secrets, "doc.sops.yaml", "/database/password");
    assert!(matches!(error, Error::SopsTampered { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::DigestMismatch);
    assert!(error.to_string().contains("/database/password"), "{error}");
}

#[test]
fn a_value_moved_to_another_key_fails_its_gcm_tag() {
    // The two encrypted values swapped: each opens only under its own key path.
    let (_dir, secrets) = edited(&format!("repo/{KEYCLOAK}"), |doc| {
        let lines: Vec<&str> = doc.lines().collect();
        let user = lines
            .iter()
            .position(|l| l.trim_start().starts_with("username:"))
            .unwrap();
        let value = |l: &str| l.split_once(": ").unwrap().1.to_string();
        let (u, p) = (value(lines[user]), value(lines[user + 1]));
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        out[user] = format!("    username: {p}");
        out[user + 1] = format!("    password: {u}");
        out.join("\n") + "\n"
    });
    let error = refused(&secrets, "doc.sops.yaml", "/database/password");
    assert!(matches!(error, Error::SopsTampered { .. }), "{error}");
}

#[test]
fn reordered_keys_fail_the_mac() {
    // The two lines swapped whole: each value still opens, but the MAC hashes document order.
    let (_dir, secrets) = edited(&format!("repo/{KEYCLOAK}"), |doc| {
        let mut lines: Vec<&str> = doc.lines().collect();
        let user = lines
            .iter()
            .position(|l| l.trim_start().starts_with("username:"))
            .unwrap();
        lines.swap(user, user + 1);
        lines.join("\n") + "\n"
    });
    let error = refused(&secrets, "doc.sops.yaml", "/database/password");
    assert!(matches!(error, Error::SopsTampered { .. }), "{error}");
    assert!(error.to_string().contains("MAC"), "{error}");
    assert_eq!(error.kind(), ErrorKind::DigestMismatch);
}

#[test]
fn a_changed_plain_text_value_fails_the_mac() {
    let (_dir, secrets) = edited("variants/unencrypted-suffix.sops.yaml", |doc| {
        doc.replacen(
            "region_unencrypted: eu-west-1",
            "region_unencrypted: eu-west-2",
            1,
        )
    });
    let error = refused(&secrets, "doc.sops.yaml", "/api/region_unencrypted");
    assert!(matches!(error, Error::SopsTampered { .. }), "{error}");
    assert!(error.to_string().contains("MAC"), "{error}");
    // Added in plain text: caught too.
    let (_dir, secrets) = edited("variants/encrypted-regex.sops.yaml", |doc| {
        doc.replacen("note: \"\"", "note: \"\"\nextra: 1", 1)
    });
    assert!(matches!(
        refused(&secrets, "doc.sops.yaml", "/database/password"),
        Error::SopsTampered { .. }
    ));
}

#[test]
fn sops_rules_on_what_is_encrypted_are_followed() {
    let variants = fixtures("variants");
    for doc in [
        "encrypted-regex.sops.yaml",
        "unencrypted-suffix.sops.yaml",
        "mac-only-encrypted.sops.yaml",
    ] {
        assert_eq!(
            get(&variants, doc, "/database/password"),
            "test-secret",
            "{doc}"
        );
        assert_eq!(get(&variants, doc, "/api/token"), "tok-123", "{doc}");
        assert!(matches!(
            refused(&variants, doc, "/database/port"),
            Error::SecretPointer { .. }
        ));
    }
    let doc = "unencrypted-suffix.sops.yaml";
    assert_eq!(get(&variants, doc, "/database/username"), "admin");
    assert_eq!(get(&variants, doc, "/note"), "");
}

/// M1: a value the rules leave in plain text has no GCM tag, and the MAC may not cover it (under
/// mac_only_encrypted) or its key's name (never hashed): refused, whatever the MAC says.
#[test]
fn a_value_stored_in_plain_text_is_refused() {
    let variants = fixtures("variants");
    for (doc, pointer) in [
        ("encrypted-regex.sops.yaml", "/database/username"),
        ("encrypted-regex.sops.yaml", "/note"),
        ("mac-only-encrypted.sops.yaml", "/database/host"),
        ("unencrypted-suffix.sops.yaml", "/api/region_unencrypted"),
    ] {
        let error = refused(&variants, doc, pointer);
        assert!(
            matches!(error, Error::SecretPlaintext { .. }),
            "{doc} {pointer}: {error}"
        );
        assert_eq!(error.kind(), ErrorKind::BadInput);
        assert_eq!(
            error.to_string(),
            format!(
                "the value at {pointer:?} is stored in plain text in {doc}: labflash reads only encrypted values"
            )
        );
    }
    // The review's cases: a plain value changed under mac_only_encrypted, and two plain keys'
    // names swapped (values in place), both of which sops accepts.
    let (_dir, secrets) = edited("variants/mac-only-encrypted.sops.yaml", |doc| {
        doc.replacen("host: db.example.com", "host: db.example.org", 1)
    });
    assert!(matches!(
        refused(&secrets, "doc.sops.yaml", "/database/host"),
        Error::SecretPlaintext { .. }
    ));
    let (_dir, secrets) = edited("variants/encrypted-regex.sops.yaml", |doc| {
        doc.replacen("    host: db.example.com", "    HOSTX: db.example.com", 1)
            .replacen("    username: admin", "    host: admin", 1)
            .replacen(
                "    HOSTX: db.example.com",
                "    username: db.example.com",
                1,
            )
    });
    assert!(matches!(
        refused(&secrets, "doc.sops.yaml", "/database/host"),
        Error::SecretPlaintext { .. }
    ));
    // The encrypted values of such a document are still read.
    assert_eq!(
        get(&secrets, "doc.sops.yaml", "/database/password"),
        "test-secret"
    );
}

#[test]
fn mac_only_encrypted_covers_the_encrypted_values_only() {
    // As sops: a plain-text value is outside such a MAC (and refused, above), an encrypted one
    // is not.
    let (_dir, secrets) = edited("variants/mac-only-encrypted.sops.yaml", |doc| {
        doc.replacen("host: db.example.com", "host: db.example.org", 1)
    });
    assert_eq!(
        get(&secrets, "doc.sops.yaml", "/database/password"),
        "test-secret"
    );
    // Without the setting, the same MAC does not hold.
    let (_dir, secrets) = edited("variants/mac-only-encrypted.sops.yaml", |doc| {
        doc.replacen("    mac_only_encrypted: true\n", "", 1)
    });
    assert!(matches!(
        refused(&secrets, "doc.sops.yaml", "/database/password"),
        Error::SopsTampered { .. }
    ));
}

#[test]
fn every_value_type_sops_writes_decrypts() {
    let variants = fixtures("variants");
    let doc = "types.sops.yaml";
    assert_eq!(get(&variants, doc, "/name"), "keycloak");
    assert_eq!(get(&variants, doc, "/quoted_number"), "8080");
    assert_eq!(get(&variants, doc, "/empty"), "");
    assert_eq!(get(&variants, doc, "/multiline"), "line one\nline two\n");
    assert_eq!(get(&variants, doc, "/servers/1/tags/1"), "y");
    assert_eq!(get(&variants, doc, "/nested/deeper/token"), "s3cr3t");
    for (pointer, says) in [
        ("/port", "a number"),
        ("/ratio", "a number"),
        ("/enabled", "a boolean"),
        ("/nothing", "null"),
    ] {
        let error = refused(&variants, doc, pointer);
        assert!(error.to_string().contains(says), "{pointer}: {error}");
    }
}

#[test]
fn documents_labflash_cannot_read_are_refused_saying_why() {
    let plain = fixtures("plain");
    let error = refused(&plain, "partial.yaml", "/database/password");
    assert!(matches!(error, Error::SopsDocument { .. }), "{error}");
    assert!(error.to_string().contains("no sops metadata"), "{error}");

    let (_dir, pgp) = edited(&format!("repo/{KEYCLOAK}"), |doc| {
        doc.replacen("sops:\n    age:", "sops:\n    pgp:", 1)
    });
    let error = refused(&pgp, "doc.sops.yaml", "/database/password");
    assert!(error.to_string().contains("age keys only"), "{error}");
    assert_eq!(error.kind(), ErrorKind::BadInput);
}

#[test]
fn sops_own_pgp_example_is_refused_as_pgp_only() {
    // getsops/sops example.yaml: parsed whole (comments, lists, types), then refused by key type.
    let error = refused(&fixtures("upstream"), "example.sops.yaml", "/myapp1");
    assert!(matches!(error, Error::SopsDocument { .. }), "{error}");
    assert!(
        error.to_string().contains("sealed only for pgp keys"),
        "{error}"
    );
}

#[test]
fn the_port_resolves_through_a_trait_object() {
    let resolver: Box<dyn SecretResolver> = Box::new(fixtures("repo"));
    let secret = resolver.resolve(KEYCLOAK, "/database/password").unwrap();
    assert_eq!(format!("{secret:?}"), "***");
}

/// L6 (a): a document with no rule is read with sops's default `_unencrypted` suffix (sops 3.11.0
/// decrypts this edit).
#[test]
fn no_rule_means_sops_default_unencrypted_suffix() {
    let (_dir, secrets) = edited("variants/unencrypted-suffix.sops.yaml", |doc| {
        doc.replacen("    unencrypted_suffix: _unencrypted\n", "", 1)
    });
    assert_eq!(get(&secrets, "doc.sops.yaml", "/api/token"), "tok-123");
    assert!(matches!(
        refused(&secrets, "doc.sops.yaml", "/api/region_unencrypted"),
        Error::SecretPlaintext { .. }
    ));
}

/// L6 (b): more than one rule is refused, as sops 3.11.0 refuses this edit ("Cannot use more
/// than one of encrypted_suffix, …").
#[test]
fn more_than_one_rule_is_refused() {
    let (_dir, secrets) = edited("variants/unencrypted-suffix.sops.yaml", |doc| {
        doc.replacen(
            "    unencrypted_suffix: _unencrypted\n",
            "    unencrypted_suffix: _unencrypted\n    encrypted_regex: ^(password|token)$\n",
            1,
        )
    });
    let error = refused(&secrets, "doc.sops.yaml", "/api/token");
    assert!(matches!(error, Error::SopsDocument { .. }), "{error}");
    assert!(error.to_string().contains("more than one"), "{error}");
    assert_eq!(error.kind(), ErrorKind::BadInput);
}

/// L6 (c): `\w` is ASCII, as in Go: sops encrypted `clé` under `--unencrypted-regex '^\w+$'`
/// (make.sh), and left `plain_key` in plain text.
#[test]
fn regex_classes_are_ascii_as_in_go() {
    let variants = fixtures("variants");
    let doc = "unicode-regex.sops.yaml";
    assert_eq!(get(&variants, doc, "/clé"), "sealed-value");
    assert!(matches!(
        refused(&variants, doc, "/plain_key"),
        Error::SecretPlaintext { .. }
    ));
}

/// L6 (d): lastmodified is the MAC's additional data as Go formats it once parsed: `+00:00` and
/// a fraction read as sops reads them (sops 3.11.0 decrypts both edits), another offset does
/// not hold (nor in sops), and text that is no RFC 3339 time is refused (as sops refuses it).
#[test]
fn lastmodified_is_read_as_go_reads_it() {
    let stamp = "2026-04-30T00:52:23Z";
    let with = |text: &'static str| {
        edited(&format!("repo/{KEYCLOAK}"), |doc| {
            doc.replacen(stamp, text, 1)
        })
    };
    for same in ["2026-04-30T00:52:23+00:00", "2026-04-30T00:52:23.5Z"] {
        let (_dir, secrets) = with(same);
        assert_eq!(
            get(&secrets, "doc.sops.yaml", "/database/password"),
            "test-secret"
        );
    }
    let (_dir, secrets) = with("2026-04-30T02:52:23+02:00");
    assert!(matches!(
        refused(&secrets, "doc.sops.yaml", "/database/password"),
        Error::SopsTampered { .. }
    ));
    for bad in ["2026-04-30t00:52:23Z", "yesterday"] {
        let (_dir, secrets) = with(bad);
        let error = refused(&secrets, "doc.sops.yaml", "/database/password");
        assert!(matches!(error, Error::SopsDocument { .. }), "{error}");
        assert!(error.to_string().contains("lastmodified"), "{error}");
    }
}

/// M2: the review's document (anchors stacking aliases 250 levels deep, 80 times) aborted the
/// process with a stack overflow; now a clean refusal, before any key is needed.
#[test]
fn anchors_and_aliases_are_refused() {
    let mut doc = String::from("a0: &a0 x\n");
    for i in 1..=80 {
        doc.push_str(&format!(
            "a{i}: &a{i} {}*a{}{}\n",
            "[".repeat(250),
            i - 1,
            "]".repeat(250)
        ));
    }
    let no_keys = AgeIdentities::from_sources(None, None, None).unwrap();
    let Err(error) = super::string_in_document("doc.sops.yaml", doc.as_bytes(), "/a0", &no_keys)
    else {
        panic!("read")
    };
    assert!(matches!(error, Error::SopsDocument { .. }), "{error}");
    assert!(error.to_string().contains("anchors or aliases"), "{error}");
    // In a real document too.
    let (_dir, secrets) = edited(&format!("repo/{KEYCLOAK}"), |doc| {
        doc.replacen("database:", "database: &db", 1) + "copy: *db\n"
    });
    let error = refused(&secrets, "doc.sops.yaml", "/database/password");
    assert!(error.to_string().contains("anchors or aliases"), "{error}");
}

/// L2: only a regular file is read, and at most 16 MiB of it.
#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = LocalSecrets::new(dir.path(), keys(LABCTL_KEY));
    std::fs::create_dir(dir.path().join("folder.sops.yaml")).unwrap();
    // A FIFO would block the read forever.
    assert!(std::process::Command::new("mkfifo")
        .arg(dir.path().join("fifo.sops.yaml"))
        .status()
        .unwrap()
        .success());
    for path in ["folder.sops.yaml", "fifo.sops.yaml"] {
        let error = refused(&secrets, path, "/a");
        assert!(matches!(error, Error::SecretPath { .. }), "{error}");
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
    let big = std::fs::File::create(dir.path().join("big.sops.yaml")).unwrap();
    big.set_len((16 << 20) + 1).unwrap();
    let error = refused(&secrets, "big.sops.yaml", "/a");
    assert!(error.to_string().contains("larger than 16 MiB"), "{error}");
    assert_eq!(error.kind(), ErrorKind::BadInput);
}

/// L5: a link in the checkout is followed only where it stays in the checkout.
#[test]
fn links_out_of_the_checkout_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = Path::new(FIXTURES).join("repo").join(KEYCLOAK);
    let link = |to: &Path, at: &str| crate::io::testing::symlink(to, dir.path().join(at)).unwrap();
    link(&outside, "out.sops.yaml");
    link(Path::new("/dev/zero"), "zero.sops.yaml");
    std::fs::copy(&outside, dir.path().join("real.sops.yaml")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    link(Path::new("../real.sops.yaml"), "sub/in.sops.yaml");
    let secrets = LocalSecrets::new(dir.path(), keys(LABCTL_KEY));
    for path in ["out.sops.yaml", "zero.sops.yaml"] {
        let error = refused(&secrets, path, "/database/password");
        assert!(matches!(error, Error::SecretPath { .. }), "{error}");
        assert!(
            error.to_string().contains("out of the secrets checkout"),
            "{error}"
        );
    }
    assert_eq!(
        get(&secrets, "sub/in.sops.yaml", "/database/password"),
        "test-secret"
    );
}

/// L4: each part of a path is one plain name on every system.
#[test]
fn colons_and_windows_device_names_are_refused() {
    for path in [
        "compute/C:evil.sops.yaml",
        "C:evil.sops.yaml",
        "a/b:stream",
        "CON",
        "a/nul.sops.yaml",
        "Aux/x.sops.yaml",
        "a/com1.yaml",
        "LPT9",
        "a/con .yaml",
        "prn./x",
    ] {
        let error = super::clean_path(path).unwrap_err();
        assert!(matches!(error, Error::SecretPath { .. }), "{path}: {error}");
    }
    for path in [
        "a/console.sops.yaml",
        "com10.yaml",
        "a/lpt.yaml",
        "nullable/x.yaml",
    ] {
        assert!(super::clean_path(path).is_ok(), "{path}");
    }
}

/// L7: document text in errors is escaped: a recipient or a key name cannot write to the
/// terminal.
#[test]
fn document_text_in_errors_is_escaped() {
    let (dir, _) = edited(&format!("repo/{KEYCLOAK}"), |doc| {
        doc.replacen(LABCTL_RECIPIENT, "age1\u{1b}[2Jfake", 1)
    });
    let secrets = LocalSecrets::new(dir.path(), keys(OTHER_KEY));
    let message = refused(&secrets, "doc.sops.yaml", "/database/password").to_string();
    assert!(!message.contains('\u{1b}'), "{message:?}");
    assert!(message.contains("\\u{1b}"), "{message:?}");
    // A key name with a newline, in the place of a value that does not decrypt there.
    let (_dir, secrets) = edited(&format!("repo/{KEYCLOAK}"), |doc| {
        doc.replacen("    username:", "    \"user\\nname\":", 1)
    });
    let message = refused(&secrets, "doc.sops.yaml", "/database/password").to_string();
    assert!(!message.contains('\n'), "{message:?}");
    assert!(message.contains("user\\nname"), "{message:?}");
}
