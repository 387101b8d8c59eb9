//! Image reference normalization as containerd does it (Docker's
//! `ParseNormalizedNamed` + `TagNameOnly`): `busybox` is
//! `docker.io/library/busybox:latest`.

const DEFAULT_DOMAIN: &str = "docker.io";
const OFFICIAL_REPOSITORY_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// The fully qualified form of `reference`, or the reason it does not parse
/// (in Docker's words, which containerd passes on).
pub fn normalize(reference: &str) -> Result<String, String> {
    const INVALID: &str = "invalid reference format";
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
        None => (reference, None),
    };
    let last_component_start = name_and_tag.rfind('/').map_or(0, |slash| slash + 1);
    let (name, tag) = match name_and_tag[last_component_start..].rfind(':') {
        Some(colon) => {
            let colon = last_component_start + colon;
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        None => (name_and_tag, None),
    };
    if name.is_empty() {
        return Err(INVALID.to_string());
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first, rest.to_string())
        }
        _ => (DEFAULT_DOMAIN, name.to_string()),
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("{INVALID}: repository name must be lowercase"));
    }
    let path_is_valid = path.split('/').all(|component| {
        !component.is_empty()
            && component.starts_with(|c: char| c.is_ascii_alphanumeric())
            && component.ends_with(|c: char| c.is_ascii_alphanumeric())
            && component.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    });
    let domain_is_valid = !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    let tag_is_valid = tag.is_none_or(|tag| {
        !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    });
    let digest_is_valid = digest.is_none_or(|digest| {
        digest.split_once(':').is_some_and(|(algorithm, hex)| {
            !algorithm.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
        })
    });
    if !(path_is_valid && domain_is_valid && tag_is_valid && digest_is_valid) {
        return Err(INVALID.to_string());
    }
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPOSITORY_PREFIX}{path}")
    } else {
        path
    };
    let mut normalized = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(tag), _) => {
            normalized.push(':');
            normalized.push_str(tag);
        }
        (None, None) => {
            normalized.push(':');
            normalized.push_str(DEFAULT_TAG);
        }
        (None, Some(_)) => {}
    }
    if let Some(digest) = digest {
        normalized.push('@');
        normalized.push_str(digest);
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_containerd() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("someone/app:v1", "docker.io/someone/app:v1"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("localhost/app", "localhost/app:latest"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
            ("127.0.0.1:5000/team/app:2", "127.0.0.1:5000/team/app:2"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(expected), "{input}");
        }
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            normalize(&format!("busybox@{digest}")),
            Ok(format!("docker.io/library/busybox@{digest}"))
        );
    }

    #[test]
    fn rejects_what_docker_rejects() {
        assert_eq!(
            normalize("UPPER/Case").unwrap_err(),
            "invalid reference format: repository name must be lowercase"
        );
        for invalid in [
            "",
            ":tag",
            "app:",
            "app@sha256:xyz",
            "a//b",
            "-app",
            "app:-x",
        ] {
            assert!(normalize(invalid).is_err(), "{invalid:?}");
        }
    }
}
