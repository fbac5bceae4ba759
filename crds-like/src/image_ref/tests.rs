//! Image reference grammar: what Docker and Fly's registry accept is accepted, and each kind
//! of mistake the user test found (uppercase, non-ASCII, short digest, huge tag) is refused
//! with its own message.

use super::*;

const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn parts(text: &str) -> (Option<&str>, &str, Option<&str>, Option<&str>) {
    let r = ImageRef::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(r.to_string(), text, "round trip");
    (r.host, r.repository, r.tag, r.digest)
}

#[test]
fn references_registries_accept_parse_into_their_parts() {
    assert_eq!(
        parts("registry.fly.io/lowendinsight:deployment-01KKWE7CCCJ51WE7WX6WN2788H"),
        (
            Some("registry.fly.io"),
            "lowendinsight",
            Some("deployment-01KKWE7CCCJ51WE7WX6WN2788H"),
            None
        )
    );
    assert_eq!(parts("nginx"), (None, "nginx", None, None));
    assert_eq!(parts("nginx:1.25"), (None, "nginx", Some("1.25"), None));
    assert_eq!(parts("library/nginx"), (None, "library/nginx", None, None));
    assert_eq!(
        parts("localhost:5000/a/b:tag"),
        (Some("localhost:5000"), "a/b", Some("tag"), None)
    );
    assert_eq!(
        parts("[::1]:5000/app:v1"),
        (Some("[::1]:5000"), "app", Some("v1"), None)
    );
    assert_eq!(
        parts("127.0.0.1:5000/x"),
        (Some("127.0.0.1:5000"), "x", None, None)
    );
    // An uppercase first part is a host (distribution's splitDomain), so this is valid.
    assert_eq!(parts("MyHost/app"), (Some("MyHost"), "app", None, None));
    let digest = format!("sha256:{HEX64}");
    assert_eq!(
        parts(&format!("registry.fly.io/web@{digest}")),
        (Some("registry.fly.io"), "web", None, Some(digest.as_str()))
    );
    assert_eq!(
        parts(&format!("web:v1@{digest}")),
        (None, "web", Some("v1"), Some(digest.as_str()))
    );
    for ok in [
        "my-org/my_app.web",
        "a__b",
        "a---b",
        "a.b-c_d",
        "x:_tag",
        "x:V1.2-rc_3",
    ] {
        ImageRef::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    ImageRef::parse(&format!("web:{}", "a".repeat(TAG_MAX))).unwrap();
}

#[test]
fn uppercase_repository_is_refused_with_the_lowercase_spelling() {
    let e = ImageRef::parse("registry.fly.io/X:Y").unwrap_err();
    assert_eq!(
        e,
        ImageRefError::Uppercase {
            repository: "X".to_owned()
        }
    );
    assert!(e.to_string().contains("lowercase"), "{e}");
    assert!(e.help().unwrap().starts_with("write `x`"));
    assert!(matches!(
        ImageRef::parse("registry.fly.io/My-App:v1"),
        Err(ImageRefError::Uppercase { .. })
    ));
}

#[test]
fn non_ascii_is_refused_naming_the_character() {
    let e = ImageRef::parse("héllo/ünï:cødé").unwrap_err();
    assert!(
        matches!(&e, ImageRefError::RepositoryCharacter { found, .. } if found.contains("U+00E9")),
        "{e:?}"
    );
    assert!(e.to_string().contains("not ASCII"), "{e}");
    // Non-ASCII in the tag alone.
    assert!(matches!(
        ImageRef::parse("registry.fly.io/web:cødé"),
        Err(ImageRefError::Tag { .. })
    ));
}

#[test]
fn digest_must_be_a_known_algorithm_with_its_full_length() {
    let e = ImageRef::parse("x@sha256:abc").unwrap_err();
    assert_eq!(
        e,
        ImageRefError::DigestHex {
            digest: "sha256:abc".to_owned(),
            algorithm: "sha256",
            expected: 64,
            found: 3
        }
    );
    assert!(e.to_string().contains("64 lowercase hex digits"), "{e}");
    assert!(e.help().is_some());
    let upper = format!("x@sha256:{}", HEX64.to_uppercase());
    assert!(matches!(
        ImageRef::parse(&upper),
        Err(ImageRefError::DigestHex { .. })
    ));
    for bad in [
        "x@",
        "x@sha256",
        "x@md5:0123456789abcdef0123456789abcdef",
        "x@:abc",
    ] {
        assert!(
            matches!(ImageRef::parse(bad), Err(ImageRefError::Digest { .. })),
            "{bad}"
        );
    }
    ImageRef::parse(&format!("x@sha512:{HEX64}{HEX64}")).unwrap();
}

#[test]
fn a_huge_tag_is_refused_without_repeating_it() {
    let text = format!("registry.fly.io/web:{}", "a".repeat(20_000));
    let e = ImageRef::parse(&text).unwrap_err();
    assert_eq!(e, ImageRefError::TagTooLong { len: 20_000 });
    assert!(e.to_string().len() < 100, "{e}");
    let e = ImageRef::parse(&format!("{}:v1", "a".repeat(300))).unwrap_err();
    assert_eq!(e, ImageRefError::NameTooLong { len: 300 });
    // A refused long text is shortened in the message.
    let e = ImageRef::parse(&format!("web:-{}", "a".repeat(100))).unwrap_err();
    assert!(e.to_string().contains("(101 characters)"), "{e}");
}

#[test]
fn badly_shaped_names_tags_and_hosts_are_refused() {
    for bad in [
        "a..b", "a/", "/a", "a//b", "a-", "-a", "a._b", "a___b", "web:",
    ] {
        assert!(ImageRef::parse(bad).is_err(), "{bad} should be refused");
    }
    for (bad, want) in [
        ("web:-x", "Tag"),
        ("web:.x", "Tag"),
        ("web:a+b", "Tag"),
        ("-host.com/x", "Host"),
        ("host.com:/x", "Host"),
        ("host.com:80a/x", "Host"),
        ("[zz]:5000/x", "Host"),
        ("a..b", "RepositoryShape"),
        ("a b", "RepositoryCharacter"),
        ("", "Empty"),
    ] {
        let e = ImageRef::parse(bad).unwrap_err();
        assert!(format!("{e:?}").starts_with(want), "{bad}: {e:?}");
    }
}
