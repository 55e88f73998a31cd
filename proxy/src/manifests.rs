//! The manifests format (pure): file contents → Snapshot. Multi-document YAML, `kind: List`, a
//! `.json` file with one object or a List; objects without a namespace are in `default`; file
//! order stands in for creationTimestamp. One malformed document is reported and skipped
//! without affecting the others; unknown kinds are ignored.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::{ObjectKey, Snapshot};

/// One file's name (for messages) and contents, in the order files are read.
#[derive(Clone, Debug)]
pub struct ManifestFile {
    pub name: String,
    pub contents: String,
}

/// A document that could not be used, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentError {
    pub file: String,
    /// 1-based index of the document in its file.
    pub document: usize,
    pub message: String,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} document {}: {}",
            self.file, self.document, self.message
        )
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub snapshot: Snapshot,
    pub errors: Vec<DocumentError>,
    /// Documents of kinds we do not read (counted, not errors).
    pub ignored: usize,
}

pub fn parse(files: &[ManifestFile]) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, file) in files.iter().enumerate() {
        parse_file_into(&mut parsed, file, index);
    }
    parsed
}

/// One file on its own, as the `index`-th file of its folder (its objects' stand-in age).
/// Merging such results in file order with [`Parsed::merge`] equals [`parse`] of all files.
pub fn parse_file(file: &ManifestFile, index: usize) -> Parsed {
    let mut parsed = Parsed::default();
    parse_file_into(&mut parsed, file, index);
    parsed
}

fn parse_file_into(parsed: &mut Parsed, file: &ManifestFile, index: usize) {
    let documents: Vec<String> = if file.name.ends_with(".json") {
        vec![file.contents.clone()]
    } else {
        split_documents(&file.contents)
    };
    for (doc_index, text) in documents.iter().enumerate() {
        let mut reader = DocReader {
            parsed,
            file: &file.name,
            document: doc_index + 1,
            file_index: index,
        };
        let value = if file.name.ends_with(".json") {
            serde_json::from_str::<Value>(text).map_err(|e| e.to_string())
        } else {
            serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
        };
        match value {
            Ok(Value::Null) => {}
            Ok(value) => reader.object(value, None),
            Err(message) => reader.error(format!("not valid YAML/JSON: {message}")),
        }
    }
}

impl Parsed {
    /// Adds a later file's objects (which win over earlier ones of the same key, as in
    /// [`parse`]), errors and counts.
    pub fn merge(&mut self, later: &Parsed) {
        self.snapshot.extend_from(&later.snapshot);
        self.errors.extend(later.errors.iter().cloned());
        self.ignored += later.ignored;
    }
}

/// Splits YAML text at `---` document markers (and drops `...` end markers), so that a syntax
/// error in one document cannot hide the others. Comment-only documents are dropped.
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = Vec::new();
    let mut current = String::new();
    let mut push = |doc: &mut String| {
        let has_content = doc
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if has_content {
            documents.push(std::mem::take(doc));
        } else {
            doc.clear();
        }
    };
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") || line.starts_with("---\t") {
            push(&mut current);
            current.push_str(line[3..].trim_start());
            current.push('\n');
        } else if line == "..." {
            push(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    push(&mut current);
    documents
}

struct DocReader<'a> {
    parsed: &'a mut Parsed,
    file: &'a str,
    document: usize,
    file_index: usize,
}

impl DocReader<'_> {
    fn error(&mut self, message: String) {
        self.parsed.errors.push(DocumentError {
            file: self.file.to_owned(),
            document: self.document,
            message,
        });
    }

    /// `item` is the position inside a List, for messages.
    fn object(&mut self, value: Value, item: Option<usize>) {
        let at = item.map(|i| format!("List item {i}: ")).unwrap_or_default();
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        match (api_version, kind) {
            (_, "List") | (_, "IngressList") | (_, "ServiceList") if item.is_none() => {
                match value.get("items") {
                    Some(Value::Array(items)) => {
                        for (i, obj) in items.iter().enumerate() {
                            self.object(obj.clone(), Some(i + 1));
                        }
                    }
                    _ => self.error(format!("{kind} without items")),
                }
            }
            ("networking.k8s.io/v1", "Ingress") => {
                if let Some((key, mut ingress)) = self.typed::<Ingress>(value, &at) {
                    match validate_ingress(&ingress) {
                        Ok(()) => {
                            ingress.metadata = self.stand_in_age(ingress.metadata);
                            self.parsed
                                .snapshot
                                .ingresses
                                .insert(key, Arc::new(ingress));
                        }
                        Err(why) => {
                            self.error(format!("{at}Ingress {key} is invalid (the apiserver would refuse it): {why}"));
                        }
                    }
                }
            }
            ("networking.k8s.io/v1", "IngressClass") => {
                if let Some((key, class)) = self.typed::<IngressClass>(value, &at) {
                    self.parsed
                        .snapshot
                        .ingress_classes
                        .insert(key.name, Arc::new(class));
                }
            }
            ("v1", "Service") => {
                if let Some((key, service)) = self.typed::<Service>(value, &at) {
                    self.parsed.snapshot.services.insert(key, Arc::new(service));
                }
            }
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                if let Some((key, slice)) = self.typed::<EndpointSlice>(value, &at) {
                    self.parsed
                        .snapshot
                        .endpoint_slices
                        .insert(key, Arc::new(slice));
                }
            }
            ("v1", "Secret") => {
                if let Some((key, mut secret)) = self.typed::<Secret>(value, &at) {
                    // The apiserver folds stringData into data; do the same.
                    if let Some(strings) = secret.string_data.take() {
                        let data = secret.data.get_or_insert_with(Default::default);
                        for (k, v) in strings {
                            data.insert(k, ByteString(v.into_bytes()));
                        }
                    }
                    self.parsed.snapshot.secrets.insert(key, Arc::new(secret));
                }
            }
            ("v1", "ConfigMap") => {
                if let Some((key, map)) = self.typed::<ConfigMap>(value, &at) {
                    self.parsed.snapshot.config_maps.insert(key, Arc::new(map));
                }
            }
            ("", _) | (_, "") => self.error(format!("{at}an object needs apiVersion and kind")),
            _ => self.parsed.ignored += 1,
        }
    }

    fn typed<K>(&mut self, value: Value, at: &str) -> Option<(ObjectKey, K)>
    where
        K: DeserializeOwned + k8s_openapi::Metadata<Ty = ObjectMeta> + k8s_openapi::Resource,
    {
        let mut object: K = match serde_json::from_value(value) {
            Ok(object) => object,
            Err(err) => {
                self.error(format!("{at}not a valid {}: {err}", K::KIND));
                return None;
            }
        };
        let meta = object.metadata_mut();
        let Some(name) = meta.name.clone().filter(|n| !n.is_empty()) else {
            self.error(format!("{at}{} without metadata.name", K::KIND));
            return None;
        };
        let namespace = if K::URL_PATH_SEGMENT == "ingressclasses" {
            String::new()
        } else {
            meta.namespace
                .get_or_insert_with(|| "default".to_owned())
                .clone()
        };
        Some((ObjectKey::new(namespace, name), object))
    }

    /// File order then namespace/name stands in for creationTimestamp: the n-th file is n
    /// seconds after the epoch, and compile breaks ties by namespace/name.
    fn stand_in_age(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if meta.creation_timestamp.is_none()
            && let Ok(ts) = jiff::Timestamp::from_second(self.file_index as i64)
        {
            meta.creation_timestamp = Some(Time(ts));
        }
        meta
    }
}

/// What the apiserver's validation refuses and compile could not make sense of.
fn validate_ingress(ingress: &Ingress) -> Result<(), String> {
    let spec = ingress.spec.as_ref().ok_or("it has no spec")?;
    if let Some(backend) = &spec.default_backend {
        validate_backend(backend).map_err(|e| format!("defaultBackend: {e}"))?;
    }
    for rule in spec.rules.as_deref().unwrap_or(&[]) {
        for path in rule
            .http
            .as_ref()
            .map(|h| h.paths.as_slice())
            .unwrap_or(&[])
        {
            validate_backend(&path.backend)
                .map_err(|e| format!("path {:?}: {e}", path.path.as_deref().unwrap_or("")))?;
        }
    }
    Ok(())
}

fn validate_backend(backend: &IngressBackend) -> Result<(), String> {
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => Err("a backend has either service or resource, not both".into()),
        (None, None) => Err("a backend needs a service (or a resource)".into()),
        (Some(service), None) => {
            let port = service.port.as_ref();
            let named = port
                .and_then(|p| p.name.as_deref())
                .is_some_and(|n| !n.is_empty());
            let numbered = port.and_then(|p| p.number).is_some();
            if named == numbered {
                Err(format!(
                    "service {}: port needs exactly one of name or number",
                    service.name
                ))
            } else {
                Ok(())
            }
        }
        (None, Some(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, contents: &str) -> ManifestFile {
        ManifestFile {
            name: name.to_owned(),
            contents: contents.to_owned(),
        }
    }

    const SERVICE: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n";

    #[test]
    fn multi_document_yaml_with_defaults_and_unknown_kinds() {
        let text = format!(
            "# leading comment\n---\n{SERVICE}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: x}}\n---\n# only a comment\n---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: sw}}\nspec: {{controller: switchyard.dev/ingress-controller}}\n"
        );
        let parsed = parse(&[file("a.yaml", &text)]);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert!(
            parsed
                .snapshot
                .services
                .contains_key(&ObjectKey::new("default", "web"))
        );
        assert!(parsed.snapshot.ingress_classes.contains_key("sw"));
        assert_eq!(parsed.ignored, 1);
    }

    #[test]
    fn a_malformed_document_is_reported_with_file_and_index_and_others_survive() {
        let text = format!(
            "{SERVICE}---\napiVersion: v1\nkind: Service\nmetadata: {{name: [unclosed\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: other, namespace: apps}}\n"
        );
        let parsed = parse(&[file("svc.yaml", &text)]);
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        assert_eq!(parsed.errors[0].file, "svc.yaml");
        assert_eq!(parsed.errors[0].document, 2);
        assert!(
            parsed.errors[0]
                .to_string()
                .starts_with("svc.yaml document 2: ")
        );
        assert_eq!(parsed.snapshot.services.len(), 2);
        assert!(
            parsed
                .snapshot
                .services
                .contains_key(&ObjectKey::new("apps", "other"))
        );
    }

    #[test]
    fn wrong_field_types_are_errors_not_panics() {
        let text = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\nspec: {rules: 5}\n";
        let parsed = parse(&[file("bad.yaml", text)]);
        assert_eq!(parsed.errors.len(), 1);
        assert!(parsed.errors[0].message.contains("not a valid Ingress"));
        assert!(parsed.snapshot.ingresses.is_empty());
    }

    #[test]
    fn list_and_json_files_are_read() {
        let list = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}},
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"b","namespace":"n"}}]}"#;
        let single = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"c"}}"#;
        let yaml_list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: d}}\n";
        let parsed = parse(&[
            file("l.json", list),
            file("s.json", single),
            file("l.yaml", yaml_list),
        ]);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let names: Vec<String> = parsed
            .snapshot
            .services
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(names, ["default/a", "default/c", "default/d", "n/b"]);
    }

    #[test]
    fn files_parsed_one_by_one_and_merged_equal_one_parse() {
        let files = [
            file("1.yaml", &format!("{SERVICE}---\nkind: Nonsense\n")),
            file(
                "2.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {v: \"2\"}}\n",
            ),
            file(
                "3.json",
                r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"other"}}"#,
            ),
        ];
        let whole = parse(&files);
        let mut merged = Parsed::default();
        for (i, f) in files.iter().enumerate() {
            merged.merge(&parse_file(f, i));
        }
        assert_eq!(merged.errors, whole.errors);
        assert_eq!(merged.ignored, whole.ignored);
        assert_eq!(
            format!("{:?}", merged.snapshot.services),
            format!("{:?}", whole.snapshot.services)
        );
        // The later file's Service of the same name wins, in both.
        let web = &merged.snapshot.services[&ObjectKey::new("default", "web")];
        assert!(web.metadata.labels.is_some());
    }

    #[test]
    fn file_order_stands_in_for_creation_timestamp_unless_given() {
        let ing = |name: &str, ts: &str| {
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}{ts}}}\nspec: {{defaultBackend: {{service: {{name: s, port: {{number: 80}}}}}}}}\n"
            )
        };
        let parsed = parse(&[
            file("1.yaml", &ing("first", "")),
            file("2.yaml", &ing("second", "")),
            file(
                "3.yaml",
                &ing("explicit", ", creationTimestamp: '2020-01-01T00:00:00Z'"),
            ),
        ]);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let age = |name: &str| {
            parsed.snapshot.ingresses[&ObjectKey::new("default", name)]
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
        };
        assert_eq!(age("first"), Some(0));
        assert_eq!(age("second"), Some(1));
        assert_eq!(age("explicit"), Some(1_577_836_800));
    }

    #[test]
    fn ingresses_the_apiserver_refuses_are_refused() {
        let no_spec = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: fragment, annotations: {a: b}}\n";
        let no_service = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: nosvc}\nspec:\n  rules:\n  - host: a.example\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {}}\n";
        let parsed = parse(&[file("a.yaml", no_spec), file("b.yaml", no_service)]);
        assert_eq!(parsed.errors.len(), 2, "{:?}", parsed.errors);
        assert!(parsed.errors[0].message.contains("no spec"));
        assert!(parsed.errors[1].message.contains("needs a service"));
        assert!(parsed.snapshot.ingresses.is_empty());
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let text =
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {tls.crt: abc}\n";
        let parsed = parse(&[file("s.yaml", text)]);
        let secret = &parsed.snapshot.secrets[&ObjectKey::new("default", "s")];
        assert_eq!(
            secret
                .data
                .as_ref()
                .and_then(|d| d.get("tls.crt"))
                .map(|b| b.0.as_slice()),
            Some(&b"abc"[..])
        );
    }
}
