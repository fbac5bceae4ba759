//! Container image references as a manifest's `spec.image` holds them:
//! `[HOST[:PORT]/]REPOSITORY[:TAG][@ALGORITHM:HEX]`, e.g.
//! `registry.fly.io/lowendinsight:deployment-01KKWE7CCCJ51WE7WX6WN2788H`.
//!
//! The grammar is distribution/reference's, the one Docker, containerd and Fly's registry
//! accept (<https://github.com/distribution/reference/blob/v0.5.0/reference.go>, lines 4–26,
//! and regexp.go there; the OCI distribution spec's `<name>` rule agrees on the path):
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain '/'] path-component ['/' path-component]*
//! domain           := host [':' port-number]
//! host             := domain-component ['.' domain-component]* | '[' IPv6address ']'
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! port-number      := /[0-9]+/
//! path-component   := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric    := /[a-z0-9]+/
//! separator        := /[_.]|__|[-]+/
//! tag              := /[\w][\w.-]{0,127}/
//! digest           := algorithm ":" hex
//! algorithm        := /[A-Za-z][A-Za-z0-9]*/ joined by /[+._-]/
//! hex              := /[0-9a-fA-F]{32,}/
//! ```
//!
//! Two further limits from the same package: a name (host and path) has at most 255
//! characters (`NameTotalLengthMax`), and the first `/`-separated part is a host only when it
//! holds a `.` or a `:`, is `localhost`, or has an uppercase letter (`splitDomain` in
//! normalize.go); otherwise it is the first path component (`nginx/nginx` is on Docker Hub).
//! Digests are checked as the OCI image spec registers them
//! (<https://github.com/opencontainers/image-spec/blob/v1.1.0/descriptor.md#registered-algorithms>):
//! `sha256` is 64 and `sha512` 128 lowercase hex digits; go-digest's third, `sha384`, is 96.
//!
//! This module only parses: it looks nothing up in a registry, and it has no opinion on
//! mutable tags (the manifest rules in `load` warn about `:latest`).

use std::fmt;

/// A parsed image reference, borrowing from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Registry host and optional port (`registry.fly.io`, `localhost:5000`). Absent: the
    /// reference names an image on Docker Hub.
    pub host: Option<&'a str>,
    /// Repository path below the host (`lowendinsight`, `library/nginx`).
    pub repository: &'a str,
    /// Tag (`deployment-01KK…`, `v1`). Absent: none was written (Docker reads `latest`).
    pub tag: Option<&'a str>,
    /// Digest as written (`sha256:` and 64 hex digits). Absent: none was written.
    pub digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    /// Parse `text` as an image reference.
    ///
    /// # Errors
    /// [`ImageRefError`] naming the first part that breaks the grammar in the module docs.
    ///
    /// # Example
    /// ```
    /// use opsctl_crds::image_ref::ImageRef;
    /// let r = ImageRef::parse("registry.fly.io/web:deployment-1").unwrap();
    /// assert_eq!((r.host, r.repository, r.tag), (Some("registry.fly.io"), "web", Some("deployment-1")));
    /// assert!(ImageRef::parse("registry.fly.io/Web:v1").is_err());
    /// ```
    pub fn parse(text: &'a str) -> Result<Self, ImageRefError> {
        if text.is_empty() {
            return Err(ImageRefError::Empty);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        // A tag's `:` comes after the last `/`; a `:` before it belongs to a host's port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        let (host, repository) = match name.split_once('/') {
            Some((first, path)) if is_host_like(first) => (Some(first), path),
            _ => (None, name),
        };
        if let Some(host) = host {
            check_host(host)?;
        }
        check_repository(repository)?;
        let name_len = name.chars().count();
        if name_len > NAME_MAX {
            return Err(ImageRefError::NameTooLong { len: name_len });
        }
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        if let Some(digest) = digest {
            check_digest(digest)?;
        }
        Ok(ImageRef {
            host,
            repository,
            tag,
            digest,
        })
    }
}

/// Most characters in a name, host included (distribution/reference `NameTotalLengthMax`).
pub const NAME_MAX: usize = 255;

/// Most characters in a tag (the `{0,127}` after the first character of the tag rule).
pub const TAG_MAX: usize = 128;

/// Why a text is not an image reference. Every variant is the manifest author's to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageRefError {
    /// Nothing was written.
    #[error("the reference is empty")]
    Empty,
    /// The host part is not a host name, IPv4 address or `[IPv6]`, with an optional port.
    #[error(
        "registry host `{host}` is not a host name with an optional port: expected letters, digits, `-` and `.`, like `registry.fly.io` or `localhost:5000`"
    )]
    Host {
        /// The host part, shortened when long.
        host: String,
    },
    /// A repository path component has an uppercase letter.
    #[error("repository `{repository}` has uppercase letters: repository names are lowercase")]
    Uppercase {
        /// The repository path, shortened when long.
        repository: String,
    },
    /// A repository path has a character outside `a-z`, `0-9`, `.`, `_`, `-` and `/`.
    #[error(
        "repository `{repository}` has the character {found}: repository names use only lowercase ASCII letters, digits, and `.`, `_`, `__` or `-` between them, with `/` between path components"
    )]
    RepositoryCharacter {
        /// The repository path, shortened when long.
        repository: String,
        /// The first character refused, described (`` `é` (U+00E9) ``).
        found: String,
    },
    /// A repository path component is empty or starts, ends or joins with a bad separator.
    #[error(
        "repository `{repository}` is not a path of components like `app` or `my-org/my_app.web`: each component starts and ends with a letter or digit, with `.`, `_`, `__` or `-` inside, and `/` only between components"
    )]
    RepositoryShape {
        /// The repository path, shortened when long.
        repository: String,
    },
    /// Host and path together are longer than [`NAME_MAX`].
    #[error("the name is {len} characters long: at most 255 are allowed")]
    NameTooLong {
        /// Characters in host and path.
        len: usize,
    },
    /// A tag is empty, starts with `.` or `-`, or has a character outside `A-Za-z0-9_.-`.
    #[error(
        "tag `{tag}` is not a tag: expected a letter, digit or `_`, then letters, digits, `_`, `.` and `-`, like `deployment-01KKWE7C` or `v1.2.3`"
    )]
    Tag {
        /// The tag, shortened when long.
        tag: String,
    },
    /// A tag is longer than [`TAG_MAX`].
    #[error("the tag is {len} characters long: at most 128 are allowed")]
    TagTooLong {
        /// Characters in the tag.
        len: usize,
    },
    /// The digest is not `algorithm:hex`, or its algorithm is not one registries use.
    #[error("digest `{digest}` is not a digest: expected `sha256:` and 64 lowercase hex digits")]
    Digest {
        /// The digest, shortened when long.
        digest: String,
    },
    /// The digest's hex part has the wrong length or case for its algorithm.
    #[error(
        "digest `{digest}` is not a {algorithm} digest: expected `{algorithm}:` and {expected} lowercase hex digits, found {found} characters"
    )]
    DigestHex {
        /// The digest, shortened when long.
        digest: String,
        /// `sha256`, `sha384` or `sha512`.
        algorithm: &'static str,
        /// Hex digits the algorithm gives.
        expected: usize,
        /// Characters written after the `:`.
        found: usize,
    },
}

impl ImageRefError {
    /// How to fix it, when there is more to say than the message.
    pub fn help(&self) -> Option<String> {
        match self {
            ImageRefError::Uppercase { repository } => Some(format!(
                "write `{}`; Fly's registry names repositories after the app, which is lowercase",
                repository.to_ascii_lowercase()
            )),
            ImageRefError::TagTooLong { .. } | ImageRefError::Tag { .. } => Some(
                "use the tag `fly deploy` printed, e.g. deployment-01KKWE7CCCJ51WE7WX6WN2788H"
                    .to_owned(),
            ),
            ImageRefError::Digest { .. } | ImageRefError::DigestHex { .. } => Some(
                "copy the digest from `fly releases --image` or `docker buildx imagetools inspect IMAGE`"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// `text`, cut to 64 characters with a note of the full length: a 20,000-character tag is not
/// repeated back in full.
fn shown(text: &str) -> String {
    const KEEP: usize = 64;
    let len = text.chars().count();
    if len <= KEEP {
        text.to_owned()
    } else {
        let head: String = text.chars().take(KEEP).collect();
        format!("{head}… ({len} characters)")
    }
}

fn described(ch: char) -> String {
    if ch.is_ascii_graphic() {
        format!("`{ch}`")
    } else if ch == ' ' {
        "` ` (a space)".to_owned()
    } else if ch.is_control() {
        format!("U+{:04X} (a control character)", u32::from(ch))
    } else {
        format!("`{ch}` (U+{:04X}, not ASCII)", u32::from(ch))
    }
}

/// `splitDomain`: the first part is a host when it holds `.` or `:`, is `localhost`, or has
/// an uppercase letter.
fn is_host_like(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost" || first.chars().any(char::is_uppercase)
}

fn check_host(host: &str) -> Result<(), ImageRefError> {
    let refuse = || ImageRefError::Host { host: shown(host) };
    let (name_ok, port) = if let Some(inner) = host.strip_prefix('[') {
        // `[IPv6]`: hex digits and `:`, and `.` for an embedded IPv4 address.
        let (addr, after) = inner.split_once(']').ok_or_else(refuse)?;
        let addr_ok = addr.contains(':')
            && addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(refuse)?),
        };
        (addr_ok, port)
    } else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        let name_ok = name.split('.').all(|c| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        });
        (name_ok, port)
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(refuse())
    }
}

fn check_repository(repository: &str) -> Result<(), ImageRefError> {
    if let Some(bad) = repository
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Err(ImageRefError::RepositoryCharacter {
            repository: shown(repository),
            found: described(bad),
        });
    }
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ImageRefError::Uppercase {
            repository: shown(repository),
        });
    }
    if !repository.split('/').all(is_path_component) {
        return Err(ImageRefError::RepositoryShape {
            repository: shown(repository),
        });
    }
    Ok(())
}

/// `alpha-numeric [separator alpha-numeric]*` with `separator := [_.]|__|[-]+`, on text
/// already known to hold only `a-z0-9._-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(|&b| alnum(b)) || !bytes.last().is_some_and(|&b| alnum(b)) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn check_tag(tag: &str) -> Result<(), ImageRefError> {
    let len = tag.chars().count();
    if len > TAG_MAX {
        return Err(ImageRefError::TagTooLong { len });
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let ok = chars.next().is_some_and(word) && chars.all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ImageRefError::Tag { tag: shown(tag) })
    }
}

fn check_digest(digest: &str) -> Result<(), ImageRefError> {
    let refuse = || ImageRefError::Digest {
        digest: shown(digest),
    };
    let (algorithm, hex) = digest.split_once(':').ok_or_else(refuse)?;
    let (algorithm, expected) = match algorithm {
        "sha256" => ("sha256", 64),
        "sha384" => ("sha384", 96),
        "sha512" => ("sha512", 128),
        _ => return Err(refuse()),
    };
    let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if hex.len() == expected && hex.chars().all(lower_hex) {
        Ok(())
    } else {
        Err(ImageRefError::DigestHex {
            digest: shown(digest),
            algorithm,
            expected,
            found: hex.chars().count(),
        })
    }
}

impl fmt::Display for ImageRef<'_> {
    /// The reference as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = self.host {
            write!(f, "{host}/")?;
        }
        f.write_str(self.repository)?;
        if let Some(tag) = self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
