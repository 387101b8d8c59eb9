//! A probe's or hook's port, by number or by the name of one of the container's ports, resolved as upstream's `ResolveContainerPort` does (with its error texts).

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The port `port` designates: a number as is, a name through the
/// container's ports, and failing that a name that is a number written as
/// a string; the result must be in 1..=65535.
pub fn resolve_container_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(number) => i64::from(*number),
        IntOrString::String(name) => match find_port_by_name(container, name) {
            Some(number) => i64::from(number),
            None => go_atoi(name)?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

fn find_port_by_name(container: &Container, name: &str) -> Option<i32> {
    container
        .ports
        .iter()
        .flatten()
        .find(|port| port.name.as_deref() == Some(name))
        .map(|port| port.container_port)
}

/// `strconv.Atoi` with its error texts.
fn go_atoi(text: &str) -> Result<i64, String> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            crate::go_text::quote(text)
        ));
    }
    text.parse::<i64>().map_err(|_| {
        format!(
            "strconv.Atoi: parsing {}: value out of range",
            crate::go_text::quote(text)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn container() -> Container {
        Container {
            name: "web".into(),
            ports: Some(vec![
                ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    ..Default::default()
                },
                ContainerPort {
                    name: Some("8081".into()),
                    container_port: 9000,
                    ..Default::default()
                },
                ContainerPort {
                    name: Some("broken".into()),
                    container_port: 0,
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn ports_resolve_like_upstream() {
        let int = IntOrString::Int;
        let name = |text: &str| IntOrString::String(text.into());
        let cases = [
            (int(80), Ok(80)),
            (int(65535), Ok(65535)),
            (int(0), Err("invalid port number: 0".to_string())),
            (int(70000), Err("invalid port number: 70000".to_string())),
            (name("http"), Ok(8080)),
            // A name wins over the number it spells.
            (name("8081"), Ok(9000)),
            (name("9090"), Ok(9090)),
            (name("+90"), Ok(90)),
            (name("-1"), Err("invalid port number: -1".to_string())),
            (name("broken"), Err("invalid port number: 0".to_string())),
            (
                name("grpc"),
                Err("strconv.Atoi: parsing \"grpc\": invalid syntax".to_string()),
            ),
            (
                name(""),
                Err("strconv.Atoi: parsing \"\": invalid syntax".to_string()),
            ),
            (
                name("99999999999999999999"),
                Err(
                    "strconv.Atoi: parsing \"99999999999999999999\": value out of range"
                        .to_string(),
                ),
            ),
        ];
        for (port, expected) in cases {
            assert_eq!(
                resolve_container_port(&port, &container()),
                expected,
                "{port:?}"
            );
        }
    }
}
