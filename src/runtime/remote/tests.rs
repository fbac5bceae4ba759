use super::*;

fn url(s: &str) -> GitUrl {
    s.parse().unwrap()
}

#[test]
fn credentials_go_to_git_as_a_scoped_header_not_in_the_url() {
    let (bare, extra) =
        url("https://x-access-token:ghs%2FSECRET@github.com/org/repo.git").for_git();
    assert_eq!(bare, "https://github.com/org/repo.git");
    assert_eq!(extra.len(), 1);
    assert_eq!(extra[0].0, "http.https://github.com/.extraHeader");
    // base64("x-access-token:ghs/SECRET"), the password percent-decoded.
    assert_eq!(
        extra[0].1,
        "Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hzL1NFQ1JFVA=="
    );
    let (bare, extra) = url("http://tok@127.0.0.1:8080/r.git").for_git();
    assert_eq!(bare, "http://127.0.0.1:8080/r.git");
    assert_eq!(extra[0].0, "http.http://127.0.0.1:8080/.extraHeader");
    for plain in [
        "https://github.com/o/r.git",
        "ssh://git@host/r.git",
        "/srv/r.git",
    ] {
        assert_eq!(url(plain).for_git(), (plain.to_owned(), vec![]));
    }
}

/// What reaches the git server: the credentials as a Basic header on the request, the URL
/// without them (so neither `git` nor `git-remote-http` carries the token in its argv).
#[tokio::test]
async fn git_sends_the_credentials_as_a_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let n = conn.read(&mut buf).await.unwrap();
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = RemoteConfig {
        url: url(&format!(
            "http://deploy:s3cret-TOKEN@127.0.0.1:{port}/m.git"
        )),
        branch: "main".into(),
        path: PathBuf::new(),
        interval: Duration::from_secs(60),
        clone_dir: dir.path().join("checkout"),
    };
    let err = sync(&config).await.unwrap_err();
    let request = server.await.unwrap();
    assert!(request.starts_with("GET /m.git/info/refs"), "{request}");
    assert!(
        request.contains("Authorization: Basic ZGVwbG95OnMzY3JldC1UT0tFTg=="),
        "{request}"
    );
    assert!(!err.to_string().contains("s3cret-TOKEN"), "{err}");
}

#[test]
fn credentials_never_print() {
    let cases = [
        (
            "https://x-access-token:ghs_SECRET@github.com/org/repo.git",
            "https://[redacted]@github.com/org/repo.git",
        ),
        (
            "https://ghp_TOKENONLY@github.com/org/repo.git",
            "https://[redacted]@github.com/org/repo.git",
        ),
        (
            "https://github.com/org/repo.git?access_token=abcd1234",
            "https://github.com/org/repo.git?[redacted]",
        ),
        (
            "ssh://git@github.com/org/repo.git",
            "ssh://git@github.com/org/repo.git",
        ),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("deploy:hunter22@host:repo.git", "[redacted]@host:repo.git"),
        ("file:///srv/git/m.git", "file:///srv/git/m.git"),
        ("/srv/git/m.git", "/srv/git/m.git"),
    ];
    for (raw, shown) in cases {
        let u = url(raw);
        assert_eq!(u.redacted(), shown, "{raw}");
        assert_eq!(format!("{u}"), shown);
        assert_eq!(format!("{u:?}"), shown);
    }
    let u = url("https://x-access-token:ghs_SECRET@github.com/org/repo.git");
    let said = "fatal: unable to access 'https://x-access-token:ghs_SECRET@github.com/org/repo.git/': \
                auth failed for ghs_SECRET (x-access-token)";
    let scrubbed = u.scrub(said);
    assert!(!scrubbed.contains("ghs_SECRET"), "{scrubbed}");
    assert!(
        scrubbed.contains("https://[redacted]@github.com/org/repo.git/"),
        "{scrubbed}"
    );
    let scp = url("deploy:hunter22@host:repo.git");
    assert!(
        !scp.scrub("denied: deploy:hunter22 at host")
            .contains("hunter22")
    );
    let pct = url("https://user:p%40ss%2Fword@example.com/r.git");
    assert!(!pct.scrub("denied for p@ss/word").contains("p@ss/word"));
    assert!("".parse::<GitUrl>().is_err());
}

#[test]
fn fetches_back_off_up_to_the_interval_with_jitter() {
    let minute = Duration::from_secs(60);
    assert_eq!(next_delay(minute, 0, 0.5), minute);
    assert_eq!(next_delay(minute, 0, 0.0), Duration::from_secs(54));
    assert!(next_delay(minute, 0, 0.999) < Duration::from_secs(66));
    let backoff: Vec<u64> = (1..=6)
        .map(|n| next_delay(minute, n, 0.5).as_secs())
        .collect();
    assert_eq!(backoff, [5, 10, 20, 40, 60, 60]);
    assert_eq!(next_delay(minute, 1000, 0.5), minute, "no overflow");
    let second = Duration::from_secs(1);
    assert_eq!(
        next_delay(second, 3, 0.5),
        second,
        "capped by a short interval"
    );
    let j = jitter();
    assert!((0.0..1.0).contains(&j));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit(work: &Path, file: &str, text: &str) -> String {
    std::fs::create_dir_all(work.join(file).parent().unwrap()).unwrap();
    std::fs::write(work.join(file), text).unwrap();
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", file]);
    git(work, &["rev-parse", "HEAD"])
}

#[tokio::test]
async fn the_clone_follows_the_branch_fast_forward_and_force_push() {
    let tmp = tempfile::tempdir().unwrap();
    let (bare, work) = (tmp.path().join("remote.git"), tmp.path().join("work"));
    git(
        tmp.path(),
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    git(
        tmp.path(),
        &["init", "-q", "-b", "main", work.to_str().unwrap()],
    );
    let a = commit(&work, "deploy/app.yaml", "a");
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let config = RemoteConfig {
        url: url(&format!("file://{}", bare.display())),
        branch: "main".into(),
        path: "deploy".into(),
        interval: Duration::from_secs(60),
        clone_dir: tmp.path().join("state/checkout"),
    };
    config.check().await.unwrap();
    assert_eq!(checked_out(&config.clone_dir).await, None);

    let first = sync(&config).await.unwrap();
    assert_eq!(
        first,
        Synced::FastForward {
            from: None,
            to: a.clone()
        }
    );
    assert_eq!(
        std::fs::read_to_string(config.manifests_dir().join("app.yaml")).unwrap(),
        "a"
    );
    assert_eq!(checked_out(&config.clone_dir).await, Some(a.clone()));
    assert_eq!(
        sync(&config).await.unwrap(),
        Synced::Unchanged { commit: a.clone() }
    );
    assert!(
        !std::fs::read_to_string(config.clone_dir.join(".git/config"))
            .unwrap()
            .contains("remote.git"),
        "the URL is not stored in the clone"
    );

    let b = commit(&work, "deploy/app.yaml", "b");
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    // A local edit in opsctl's clone does not survive the next commit.
    std::fs::write(config.manifests_dir().join("app.yaml"), "edited").unwrap();
    let second = sync(&config).await.unwrap();
    assert_eq!(
        second,
        Synced::FastForward {
            from: Some(a.clone()),
            to: b.clone()
        }
    );
    assert_eq!(
        std::fs::read_to_string(config.manifests_dir().join("app.yaml")).unwrap(),
        "b"
    );

    git(&work, &["reset", "-q", "--hard", &a]);
    let c = commit(&work, "deploy/app.yaml", "c");
    git(
        &work,
        &["push", "-q", "--force", bare.to_str().unwrap(), "main"],
    );
    let forced = sync(&config).await.unwrap();
    assert_eq!(
        forced,
        Synced::ForcePushed {
            from: b,
            to: c.clone()
        }
    );
    assert_eq!(git(&config.clone_dir, &["rev-parse", "HEAD"]), c);

    // Remote gone: an error naming git's complaint; the clone keeps its commit.
    std::fs::remove_dir_all(&bare).unwrap();
    let e = sync(&config).await.unwrap_err().to_string();
    assert!(e.starts_with("git fetch failed: "), "{e}");
    assert_eq!(git(&config.clone_dir, &["rev-parse", "HEAD"]), c);
}

#[tokio::test]
async fn bad_settings_are_refused_before_anything_runs() {
    let base = RemoteConfig {
        url: url("file:///nowhere"),
        branch: "main".into(),
        path: PathBuf::new(),
        interval: Duration::from_secs(60),
        clone_dir: PathBuf::from("/nonexistent/checkout"),
    };
    base.check().await.unwrap();
    assert_eq!(base.manifests_dir(), PathBuf::from("/nonexistent/checkout"));
    for (change, says) in [
        (
            RemoteConfig {
                branch: "bad..name".into(),
                ..base.clone()
            },
            "--git-branch",
        ),
        (
            RemoteConfig {
                branch: "-x".into(),
                ..base.clone()
            },
            "--git-branch",
        ),
        (
            RemoteConfig {
                path: "../up".into(),
                ..base.clone()
            },
            "--git-path",
        ),
        (
            RemoteConfig {
                path: "/abs".into(),
                ..base.clone()
            },
            "--git-path",
        ),
        (
            RemoteConfig {
                interval: Duration::from_millis(10),
                ..base.clone()
            },
            "--git-fetch-interval",
        ),
    ] {
        let e = change.check().await.unwrap_err();
        assert!(e.contains(says), "{e}");
    }
}
