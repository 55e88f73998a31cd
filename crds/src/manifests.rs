//! The CRD manifests generated from the types: what `make crds` writes and what the
//! up-to-date test compares against.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::{Certificate, ClusterIssuer, Issuer, RolloutRoute};

/// Folders, relative to the workspace root, that hold the generated manifests: the crate's own
/// copy and the Helm chart's `crds/` (which Helm installs before the chart's templates).
pub const MANIFEST_DIRS: [&str; 2] = ["crds/manifests", "charts/switchyard/crds"];

/// The comment that opens every generated file.
pub const HEADER: &str = "\
# Generated from the Rust types in crds/src by `cargo run -p switchyard-crds --bin crdgen`.
# Do not edit: change the types and run `make crds`.
";

/// Why a manifest could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("serializing CRD {name} to YAML")]
    Yaml {
        name: String,
        #[source]
        source: serde_saphyr::ser_error::Error,
    },
}

/// Every CRD of the `switchyard.dev` group, in a fixed order, as the manifests hold them.
///
/// Prefer this over `Kind::crd()` when installing CRDs: the descriptions are tidied here.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        RolloutRoute::crd(),
        Certificate::crd(),
        Issuer::crd(),
        ClusterIssuer::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                walk_schema(schema, "", false, &mut |_, _, node| {
                    unwrap_description(node);
                    drop_null_from_enum(node);
                });
            }
        }
    }
    crds
}

/// Doc comments keep their line breaks, which `kubectl explain` would print mid-sentence:
/// join wrapped lines, keep blank-line paragraph breaks.
fn unwrap_description(schema: &mut JSONSchemaProps) {
    if let Some(description) = &mut schema.description {
        *description = description
            .split("\n\n")
            .map(|paragraph| {
                paragraph
                    .split('\n')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n\n");
    }
}

/// schemars lists `null` among an optional enum's values. The apiserver refuses an explicit
/// null for an enum field even so (tested against kube-apiserver 1.34), and lists "null" among the
/// supported values in its error message, which misleads: leave it out.
fn drop_null_from_enum(schema: &mut JSONSchemaProps) {
    if let Some(values) = &mut schema.enum_ {
        values.retain(|value| !value.0.is_null());
    }
}

/// Calls `visit(path, in_value_validation, node)` on `schema` and every schema nested in it,
/// parents first. `path` is like `.spec.hosts[]`; `in_value_validation` is true inside
/// `oneOf`/`anyOf`/`allOf`/`not`, where a structural schema allows no types or descriptions.
pub fn walk_schema(
    schema: &mut JSONSchemaProps,
    path: &str,
    in_value_validation: bool,
    visit: &mut dyn FnMut(&str, bool, &mut JSONSchemaProps),
) {
    visit(path, in_value_validation, schema);
    let nested = in_value_validation;
    for (name, property) in schema.properties.iter_mut().flatten() {
        walk_schema(property, &format!("{path}.{name}"), nested, visit);
    }
    for (name, property) in schema.pattern_properties.iter_mut().flatten() {
        walk_schema(property, &format!("{path}.<{name}>"), nested, visit);
    }
    for (name, property) in schema.definitions.iter_mut().flatten() {
        walk_schema(property, &format!("{path}#{name}"), nested, visit);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(items)) => {
            walk_schema(items, &format!("{path}[]"), nested, visit);
        }
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk_schema(item, &format!("{path}[{i}]"), nested, visit);
            }
        }
        None => {}
    }
    for extra in [
        &mut schema.additional_properties,
        &mut schema.additional_items,
    ] {
        if let Some(JSONSchemaPropsOrBool::Schema(extra)) = extra {
            walk_schema(extra, &format!("{path}.*"), nested, visit);
        }
    }
    for (keyword, list) in [
        ("oneOf", &mut schema.one_of),
        ("anyOf", &mut schema.any_of),
        ("allOf", &mut schema.all_of),
    ] {
        for (i, sub) in list.iter_mut().flatten().enumerate() {
            walk_schema(sub, &format!("{path}({keyword}[{i}])"), true, visit);
        }
    }
    if let Some(not) = &mut schema.not {
        walk_schema(not, &format!("{path}(not)"), true, visit);
    }
}

/// The file name of a CRD's manifest: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.{}.yaml", crd.spec.names.plural, crd.spec.group)
}

/// The manifest of one CRD: the header comment, then the YAML document.
pub fn render_yaml(crd: &CustomResourceDefinition) -> Result<String, RenderError> {
    let yaml = serde_saphyr::to_string(crd).map_err(|source| RenderError::Yaml {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source,
    })?;
    Ok(format!("{HEADER}{yaml}"))
}

/// Every manifest as `(file name, contents)`, in the order of [`all_crds`].
pub fn render_all() -> Result<Vec<(String, String)>, RenderError> {
    all_crds()
        .iter()
        .map(|crd| Ok((file_name(crd), render_yaml(crd)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(crd: &CustomResourceDefinition) -> JSONSchemaProps {
        crd.spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.clone())
            .unwrap_or_else(|| panic!("{} has no schema", file_name(crd)))
    }

    fn crd(kind: &str) -> CustomResourceDefinition {
        all_crds()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap_or_else(|| panic!("no CRD for {kind}"))
    }

    /// The schema at a path of property names.
    fn at(schema: &JSONSchemaProps, path: &[&str]) -> JSONSchemaProps {
        path.iter().fold(schema.clone(), |node, name| {
            node.properties
                .as_ref()
                .and_then(|p| p.get(*name))
                .cloned()
                .unwrap_or_else(|| panic!("no property {name} on the way to {path:?}"))
        })
    }

    #[test]
    fn names_and_scope() {
        let expected = [
            ("RolloutRoute", "rolloutroutes", "rr", "Namespaced"),
            ("Certificate", "certificates", "swcert", "Namespaced"),
            ("Issuer", "issuers", "swissuer", "Namespaced"),
            (
                "ClusterIssuer",
                "clusterissuers",
                "swclusterissuer",
                "Cluster",
            ),
        ];
        let crds = all_crds();
        assert_eq!(crds.len(), expected.len());
        for (crd, (kind, plural, short, scope)) in crds.iter().zip(expected) {
            let names = &crd.spec.names;
            assert_eq!(names.kind, kind);
            assert_eq!(names.plural, plural);
            assert_eq!(names.short_names, Some(vec![short.to_owned()]));
            assert_eq!(names.categories, Some(vec![crate::CATEGORY.to_owned()]));
            assert_eq!(crd.spec.scope, scope);
            assert_eq!(crd.spec.group, crate::GROUP);
            assert_eq!(crd.spec.versions.len(), 1);
            assert_eq!(crd.spec.versions[0].name, crate::VERSION);
            let status = crd.spec.versions[0].subresources.as_ref();
            assert!(status.is_some_and(|s| s.status.is_some()), "{kind} status");
            assert_eq!(file_name(crd), format!("{plural}.switchyard.dev.yaml"));
        }
    }

    #[test]
    fn conditions_merge_by_type() {
        for crd in all_crds() {
            let conditions = at(&schema_of(&crd), &["status", "conditions"]);
            assert_eq!(
                conditions.x_kubernetes_list_type.as_deref(),
                Some("map"),
                "{}",
                crd.spec.names.kind
            );
            assert_eq!(
                conditions.x_kubernetes_list_map_keys,
                Some(vec!["type".to_owned()])
            );
        }
        let authorizations = at(
            &schema_of(&crd("Certificate")),
            &["status", "authorizations"],
        );
        assert_eq!(
            authorizations.x_kubernetes_list_type.as_deref(),
            Some("map")
        );
        assert_eq!(
            authorizations.x_kubernetes_list_map_keys,
            Some(vec!["dnsName".to_owned()])
        );
    }

    #[test]
    fn schemas_are_structural() {
        for crd in all_crds() {
            let kind = crd.spec.names.kind.clone();
            let mut problems = Vec::new();
            walk_schema(
                &mut schema_of(&crd),
                "",
                false,
                &mut |path, in_value_validation, node| {
                    if node.ref_path.is_some()
                        || node.schema.is_some()
                        || node.definitions.is_some()
                    {
                        problems.push(format!("{path}: $ref, $schema or definitions"));
                    }
                    if in_value_validation {
                        // Only validations may appear here; the structure lives outside.
                        if node.type_.is_some()
                            || node.description.is_some()
                            || node.default.is_some()
                            || node.nullable.is_some()
                            || node.additional_properties.is_some()
                        {
                            problems.push(format!("{path}: type/description/default in oneOf"));
                        }
                    } else if node.type_.is_none()
                        && node.x_kubernetes_int_or_string != Some(true)
                        && node.x_kubernetes_preserve_unknown_fields != Some(true)
                    {
                        problems.push(format!("{path}: no type"));
                    }
                    if node.enum_.iter().flatten().any(|v| v.0.is_null()) {
                        problems.push(format!("{path}: null in enum"));
                    }
                    if node.unique_items.is_some() {
                        problems.push(format!("{path}: uniqueItems"));
                    }
                },
            );
            assert!(problems.is_empty(), "{kind}: {problems:#?}");
        }
    }

    #[test]
    fn every_field_is_documented() {
        for crd in all_crds() {
            let kind = crd.spec.names.kind.clone();
            let mut undocumented = Vec::new();
            walk_schema(
                &mut schema_of(&crd),
                "",
                false,
                &mut |path, in_value_validation, node| {
                    let is_property = !path.ends_with(']') && !path.ends_with('*');
                    if is_property && !in_value_validation && node.description.is_none() {
                        undocumented.push(path.to_owned());
                    }
                    if let Some(description) = &node.description {
                        assert!(!description.contains('\n'), "{kind}{path}: line break");
                    }
                },
            );
            assert!(undocumented.is_empty(), "{kind}: {undocumented:#?}");
        }
    }

    #[test]
    fn ports_are_int_or_string() {
        let schema = schema_of(&crd("RolloutRoute"));
        for path in [
            ["spec", "backend", "port"],
            ["status", "stableBackend", "port"],
            ["status", "desiredBackend", "port"],
            ["status", "previousBackend", "port"],
        ] {
            let port = at(&schema, &path);
            assert_eq!(port.x_kubernetes_int_or_string, Some(true), "{path:?}");
            assert_eq!(port.type_, None, "{path:?}");
        }
    }

    #[test]
    fn validation_rules_are_in_the_schema() {
        let rules = |schema: &JSONSchemaProps| -> Vec<String> {
            schema
                .x_kubernetes_validations
                .iter()
                .flatten()
                .map(|r| r.rule.clone())
                .collect()
        };
        let rr = schema_of(&crd("RolloutRoute"));
        assert_eq!(
            rules(&at(&rr, &["spec", "strategy"])),
            ["has(self.canary) != has(self.blueGreen)"]
        );
        let steps = at(&rr, &["spec", "strategy", "canary", "steps"]);
        let Some(JSONSchemaPropsOrArray::Schema(step)) = steps.items else {
            panic!("steps has no item schema");
        };
        assert_eq!(
            rules(&step),
            ["(has(self.pause) ? 1 : 0) + (has(self.setWeight) ? 1 : 0) == 1"]
        );
        assert!(step.one_of.is_none());
        let weight = at(&step, &["setWeight"]);
        assert_eq!((weight.minimum, weight.maximum), (Some(0.0), Some(100.0)));
        let hosts = at(&rr, &["spec", "hosts"]);
        assert_eq!(hosts.min_items, Some(1));
        let pause = at(&step, &["pause", "duration"]);
        assert_eq!(
            pause.pattern.as_deref(),
            Some(crate::duration::DURATION_PATTERN)
        );

        for kind in ["Issuer", "ClusterIssuer"] {
            assert_eq!(
                rules(&at(&schema_of(&crd(kind)), &["spec"])),
                ["has(self.acme) != has(self.selfSigned)"]
            );
        }
    }

    #[test]
    fn issuer_and_cluster_issuer_share_one_shape() {
        let spec = |kind| at(&schema_of(&crd(kind)), &["spec"]);
        let (mut issuer, mut cluster) = (spec("Issuer"), spec("ClusterIssuer"));
        // Only the struct's own doc comment may differ.
        issuer.description = None;
        cluster.description = None;
        assert_eq!(issuer, cluster);
        let status = |kind| at(&schema_of(&crd(kind)), &["status"]);
        assert_eq!(status("Issuer"), status("ClusterIssuer"));
    }

    #[test]
    fn printer_columns() {
        let columns = |kind| -> Vec<String> {
            crd(kind).spec.versions[0]
                .additional_printer_columns
                .iter()
                .flatten()
                .filter(|c| c.priority.is_none())
                .map(|c| c.name.clone())
                .collect()
        };
        assert_eq!(
            columns("RolloutRoute"),
            ["Stable", "Desired", "Weight", "Step", "Phase", "Age"]
        );
        assert_eq!(
            columns("Certificate"),
            ["Ready", "Secret", "Issuer", "Not After", "Renewal", "Age"]
        );
        assert_eq!(columns("Issuer"), ["Ready", "Age"]);
        assert_eq!(columns("ClusterIssuer"), ["Ready", "Age"]);
    }

    #[test]
    fn rendered_yaml_reads_back_as_the_same_crd() {
        for crd in all_crds() {
            let yaml = render_yaml(&crd).expect("renders");
            assert!(yaml.starts_with(HEADER));
            assert!(yaml.contains("make crds"));
            let back: CustomResourceDefinition =
                serde_saphyr::from_str(&yaml).expect("the rendered YAML parses");
            assert_eq!(back, crd);
            assert_eq!(render_yaml(&crd).expect("renders"), yaml, "deterministic");
        }
    }
}
