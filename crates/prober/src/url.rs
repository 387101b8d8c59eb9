//! The URLs an httpGet action and its redirects go to, parsed, resolved (RFC 3986) and printed the way Go's `net/url` does for the texts upstream's messages carry.

use std::fmt;

/// An absolute http(s) URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Lower case, as Go parses it.
    pub scheme: String,
    /// Without the brackets of an IPv6 literal; may be empty (Go then dials
    /// the local host).
    pub host: String,
    /// The port as written; `None` means the scheme's default.
    pub port: Option<String>,
    /// Percent-encoded, as sent.
    pub path: String,
    pub query: Option<String>,
    pub fragment: Option<String>,
}

/// A URL reference as a Location header holds it: any part may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Reference {
    scheme: Option<String>,
    authority: Option<(String, Option<String>)>,
    path: String,
    query: Option<String>,
    fragment: Option<String>,
}

impl Url {
    /// What upstream's `formatURL` builds for an httpGet action: `path`
    /// parsed as a reference (only its path, query and fragment count),
    /// under the given scheme, host and port.
    pub fn for_action(scheme: &str, host: &str, port: u16, path: &str) -> Url {
        let reference = parse_reference(path).unwrap_or_else(|_| Reference {
            path: escape(path, PATH_EXTRA),
            ..Reference::default()
        });
        Url {
            scheme: scheme.to_string(),
            host: host.to_string(),
            port: Some(port.to_string()),
            path: reference.path,
            query: reference.query,
            fragment: reference.fragment,
        }
    }

    /// `host:port` as it goes into a Host header; IPv6 literals bracketed.
    pub fn authority(&self) -> String {
        let host = join_host(&self.host);
        match &self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    /// The port to dial: the written one, or the scheme's default.
    pub fn dial_port(&self) -> Result<u16, String> {
        match self.port.as_deref() {
            None | Some("") => Ok(if self.scheme == "https" { 443 } else { 80 }),
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| format!("dial tcp: address {port}: invalid port")),
        }
    }

    /// The request line's target: the path (at least "/") and the query.
    pub fn request_target(&self) -> String {
        let mut target = if self.path.is_empty() {
            "/".to_string()
        } else if self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        };
        if let Some(query) = &self.query {
            // Go sends the query as written; what may not go on a request
            // line is escaped here rather than rejected.
            target.push('?');
            target.push_str(&escape(query, QUERY_EXTRA));
        }
        target
    }

    /// The URL `location` points to from this one, as a redirect resolves it.
    pub fn join(&self, location: &str) -> Result<Url, String> {
        let reference = parse_reference(location)
            .map_err(|error| format!("parse {}: {error}", crate::go_text::quote(location)))?;
        let mut target = self.clone();
        target.fragment = reference.fragment.clone();
        if let Some(scheme) = reference.scheme {
            target.scheme = scheme;
            let (host, port) = reference.authority.unwrap_or_default();
            target.host = host;
            target.port = port;
            target.path = remove_dot_segments(&reference.path);
            target.query = reference.query;
        } else if let Some((host, port)) = reference.authority {
            target.host = host;
            target.port = port;
            target.path = remove_dot_segments(&reference.path);
            target.query = reference.query;
        } else if reference.path.is_empty() {
            if reference.query.is_some() {
                target.query = reference.query;
            }
        } else {
            target.path = if reference.path.starts_with('/') {
                remove_dot_segments(&reference.path)
            } else {
                remove_dot_segments(&merge(&self.path, &reference.path))
            };
            target.query = reference.query;
        }
        Ok(target)
    }

    /// Whether `location` carries its own scheme (Go's `URL.IsAbs`).
    pub fn is_absolute_reference(location: &str) -> bool {
        parse_reference(location).is_ok_and(|reference| reference.scheme.is_some())
    }
}

impl fmt::Display for Url {
    /// Go's `URL.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority())?;
        if !self.path.is_empty() && !self.path.starts_with('/') {
            f.write_str("/")?;
        }
        f.write_str(&self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        if let Some(fragment) = &self.fragment {
            write!(f, "#{fragment}")?;
        }
        Ok(())
    }
}

/// `net.JoinHostPort`'s host part: IPv6 literals in brackets.
pub fn join_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Characters a path keeps unescaped beyond the unreserved ones.
const PATH_EXTRA: &[u8] = b"!$&'()*+,;=:@/";
/// A query also keeps "?" (and brackets, which Go tolerates there).
const QUERY_EXTRA: &[u8] = b"!$&'()*+,;=:@/?[]";

fn parse_reference(text: &str) -> Result<Reference, &'static str> {
    if text.bytes().any(|byte| byte < 0x20 || byte == 0x7f) {
        return Err("net/url: invalid control character in URL");
    }
    let mut reference = Reference::default();
    let (rest, fragment) = match text.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment.to_string())),
        None => (text, None),
    };
    reference.fragment = fragment;
    let mut rest = rest;
    if let Some(colon) = rest.find(':') {
        let candidate = &rest[..colon];
        let is_scheme = candidate
            .bytes()
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic())
            && candidate
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"+-.".contains(&byte));
        if is_scheme {
            reference.scheme = Some(candidate.to_ascii_lowercase());
            rest = &rest[colon + 1..];
        } else if !candidate.contains(['/', '?']) {
            return Err("first path segment in URL cannot contain colon");
        }
    }
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query.to_string())),
        None => (rest, None),
    };
    reference.query = query;
    let path = if let Some(after_slashes) = rest.strip_prefix("//") {
        let end = after_slashes.find('/').unwrap_or(after_slashes.len());
        reference.authority = Some(parse_authority(&after_slashes[..end])?);
        &after_slashes[end..]
    } else {
        rest
    };
    if !valid_escapes(path) {
        return Err("invalid URL escape");
    }
    reference.path = escape(path, PATH_EXTRA);
    Ok(reference)
}

/// `host[:port]` after dropping any user information.
fn parse_authority(authority: &str) -> Result<(String, Option<String>), &'static str> {
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, after_host) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let close = bracketed.find(']').ok_or("missing ']' in host")?;
        (&bracketed[..close], &bracketed[close + 1..])
    } else {
        match host_port.rfind(':') {
            Some(colon) => (&host_port[..colon], &host_port[colon..]),
            None => (host_port, ""),
        }
    };
    let port = match after_host.strip_prefix(':') {
        Some(port) if port.bytes().all(|byte| byte.is_ascii_digit()) => Some(port.to_string()),
        Some(_) => return Err("invalid port after host"),
        None if after_host.is_empty() => None,
        None => return Err("invalid host"),
    };
    Ok((host.to_string(), port.filter(|port| !port.is_empty())))
}

fn valid_escapes(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let digits = bytes.get(index + 1..index + 3);
            if !digits.is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            index += 3;
        } else {
            index += 1;
        }
    }
    true
}

/// Percent-encodes what may not appear as is; valid `%XX` escapes stay.
fn escape(text: &str, extra: &[u8]) -> String {
    let bytes = text.as_bytes();
    let mut escaped = String::with_capacity(text.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let valid_escape = byte == b'%'
            && bytes
                .get(index + 1..index + 3)
                .is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit));
        if valid_escape
            || byte.is_ascii_alphanumeric()
            || b"-._~".contains(&byte)
            || extra.contains(&byte)
        {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
        index += 1;
    }
    escaped
}

/// RFC 3986 5.2.3.
fn merge(base_path: &str, reference_path: &str) -> String {
    match base_path.rfind('/') {
        Some(slash) => format!("{}{reference_path}", &base_path[..=slash]),
        None => format!("/{reference_path}"),
    }
}

/// RFC 3986 5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output: Vec<&str> = Vec::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            output.pop();
        } else if input == "/.." {
            input = "/";
            output.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..]
                .find('/')
                .map_or(input.len(), |slash| slash + start);
            output.push(&input[..end]);
            input = &input[end..];
        }
    }
    output.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::for_action("http", "10.0.0.5", 8080, "/a/b/c?x=1")
    }

    #[test]
    fn action_urls_print_like_go() {
        let cases = [
            (
                "http",
                "10.0.0.5",
                80,
                "/healthz",
                "http://10.0.0.5:80/healthz",
                "/healthz",
            ),
            ("http", "10.0.0.5", 80, "", "http://10.0.0.5:80", "/"),
            (
                "http",
                "10.0.0.5",
                80,
                "healthz",
                "http://10.0.0.5:80/healthz",
                "/healthz",
            ),
            (
                "https",
                "fd00::5",
                443,
                "/q?a=b c",
                "https://[fd00::5]:443/q?a=b c",
                "/q?a=b%20c",
            ),
            (
                "http",
                "h",
                1,
                "/caf\u{e9} x",
                "http://h:1/caf%C3%A9%20x",
                "/caf%C3%A9%20x",
            ),
            (
                "http",
                "h",
                1,
                "/bad%zz",
                "http://h:1/bad%25zz",
                "/bad%25zz",
            ),
            ("http", "h", 1, "http://elsewhere/p", "http://h:1/p", "/p"),
            ("http", "", 8080, "/", "http://:8080/", "/"),
        ];
        for (scheme, host, port, path, printed, target) in cases {
            let url = Url::for_action(scheme, host, port, path);
            assert_eq!(url.to_string(), printed, "{path}");
            assert_eq!(url.request_target(), target, "{path}");
        }
    }

    #[test]
    fn redirects_resolve_per_rfc_3986() {
        let cases = [
            ("/x", "http://10.0.0.5:8080/x"),
            ("d", "http://10.0.0.5:8080/a/b/d"),
            ("../d?y=2", "http://10.0.0.5:8080/a/d?y=2"),
            ("./", "http://10.0.0.5:8080/a/b/"),
            ("?y=2", "http://10.0.0.5:8080/a/b/c?y=2"),
            ("//other:9/p", "http://other:9/p"),
            ("https://10.0.0.5/s", "https://10.0.0.5/s"),
            ("HTTP://[::1]:81/v6", "http://[::1]:81/v6"),
            ("/a/./b/../../c", "http://10.0.0.5:8080/c"),
            ("http://user:pw@host/p", "http://host/p"),
        ];
        for (location, expected) in cases {
            assert_eq!(
                base().join(location).unwrap().to_string(),
                expected,
                "{location}"
            );
        }
        assert!(base().join("http://host:port/").is_err());
        assert!(Url::is_absolute_reference("https://x/"));
        assert!(!Url::is_absolute_reference("//x/"));
    }

    #[test]
    fn dial_ports_default_by_scheme() {
        let mut url = base().join("https://h/").unwrap();
        assert_eq!(url.dial_port(), Ok(443));
        url.scheme = "http".into();
        assert_eq!(url.dial_port(), Ok(80));
        assert_eq!(base().dial_port(), Ok(8080));
        assert_eq!(base().authority(), "10.0.0.5:8080");
    }
}
