//! How nginx writes a client certificate into variables: distinguished names as OpenSSL prints
//! them with `XN_FLAG_RFC2253` (`$ssl_client_s_dn`, `$ssl_client_i_dn`), and the PEM escaped as
//! a URI component (`$ssl_client_escaped_cert`).

use std::fmt::Write as _;

use x509_parser::x509::X509Name;

/// OpenSSL's short names for the attributes seen in practice; others print as a dotted OID.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "2.5.4.46" => "dnQualifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// RFC 2253 order (the last RDN first), `,` between RDNs and `+` inside one, values escaped as
/// OpenSSL does (`,+"\<>;`, a leading `#` or space, a trailing space, and bytes outside
/// printable ASCII as `\XX`).
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attribute) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attribute.attr_type().to_id_string();
            match short_name(&oid) {
                Some(short) => out.push_str(short),
                None => out.push_str(&oid),
            }
            out.push('=');
            escape_value(&mut out, attribute.as_slice());
        }
    }
    out
}

fn escape_value(out: &mut String, value: &[u8]) {
    let last = value.len().saturating_sub(1);
    for (i, &b) in value.iter().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' | b' ' if i == 0 => {
                out.push('\\');
                out.push(char::from(b));
            }
            b' ' if i == last => out.push_str("\\ "),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
}

/// nginx's `ngx_escape_uri(…, NGX_ESCAPE_URI_COMPONENT)`: everything but letters, digits and
/// `-._~` as `%XX`.
pub fn escape_uri_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A DER certificate as PEM, 64 characters a line, as OpenSSL writes it.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_component_escaping_keeps_only_unreserved_bytes() {
        assert_eq!(
            escape_uri_component("-----BEGIN CERTIFICATE-----\nMI+/=\n"),
            "-----BEGIN%20CERTIFICATE-----%0AMI%2B%2F%3D%0A"
        );
        assert_eq!(escape_uri_component("a.b_c~d"), "a.b_c~d");
    }

    #[test]
    fn values_are_escaped_as_openssl_does() {
        let mut out = String::new();
        escape_value(&mut out, b"#Acme, Inc ");
        assert_eq!(out, "\\#Acme\\, Inc\\ ");
        let mut out = String::new();
        escape_value(&mut out, "Zürich".as_bytes());
        assert_eq!(out, "Z\\C3\\BCrich");
    }

    #[test]
    fn names_print_last_rdn_first() {
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "DE");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client-1");
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        let (_, parsed) =
            x509_parser::parse_x509_certificate(cert.der()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rfc2253(parsed.subject()), "CN=client-1,O=Acme\\, Inc,C=DE");
        assert!(pem(cert.der()).starts_with("-----BEGIN CERTIFICATE-----\nMI"));
    }
}
