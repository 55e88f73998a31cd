//! `kubectl switchyard render -f route.yaml [--step N] [--from SERVICE:PORT]`: the Ingresses the
//! operator would create for a RolloutRoute, from the same pure expansion the operator uses,
//! without a cluster.
//!
//! - Without `--step`: the Ingresses for the route as it stands: a new route (no status) is
//!   served by its `spec.backend`; a route saved with its status (`kubectl get rr NAME -o
//!   yaml`) renders that status.
//! - `--step N`: during a rollout from the stable backend (the file's `status.stableBackend`, or
//!   `--from`) to `spec.backend`, at canary step N (counted from 0, as `status.currentStep`);
//!   N at or past the number of steps is the finished rollout. Blue-green: step 0 is before
//!   the switch (the preview Ingress), step 1 after it.

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use switchyard_crds::{Backend, CanaryStep, Phase, RolloutRoute, RolloutRouteStatus, Strategy};

use crate::rollout::desired_ingresses;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("document {document}: not valid YAML: {message}")]
    Yaml { document: usize, message: String },
    #[error("document {document}: not a valid RolloutRoute: {message}")]
    Route { document: usize, message: String },
    #[error("no RolloutRoute in the file")]
    NoRoute,
    #[error("RolloutRoute {name}: invalid spec: {message}")]
    Invalid { name: String, message: String },
    #[error(
        "RolloutRoute {name}: --step needs the backend being replaced: the file has no \
         status.stableBackend; pass --from SERVICE:PORT"
    )]
    NoStable { name: String },
    #[error("RolloutRoute {name}: --from {from} is spec.backend itself: nothing to roll out")]
    NothingToRollOut { name: String, from: String },
    #[error("--from {0:?}: expected SERVICE:PORT (a port number or name)")]
    BadFrom(String),
    #[error("cannot write YAML: {0}")]
    Output(String),
}

/// Where in a rollout to render.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// `--step N`.
    pub step: Option<u32>,
    /// `--from SERVICE:PORT`: the stable backend the rollout starts from.
    pub from: Option<Backend>,
}

/// `SERVICE:PORT` (a number or a port name).
pub fn parse_backend(text: &str) -> Result<Backend, RenderError> {
    let bad = || RenderError::BadFrom(text.to_owned());
    let (service, port) = text.rsplit_once(':').ok_or_else(bad)?;
    if service.is_empty() || port.is_empty() {
        return Err(bad());
    }
    let port = match port.parse::<i32>() {
        Ok(number) if (1..=65535).contains(&number) => IntOrString::Int(number),
        Ok(_) => return Err(bad()),
        Err(_) => IntOrString::String(port.to_owned()),
    };
    Ok(Backend {
        service: service.to_owned(),
        port,
    })
}

/// The RolloutRoutes in YAML text (several documents allowed; other kinds are skipped).
pub fn routes(text: &str) -> Result<Vec<RolloutRoute>, RenderError> {
    let mut routes = Vec::new();
    for (index, doc) in documents(text).into_iter().enumerate() {
        let document = index + 1;
        let value: Value = serde_saphyr::from_str(&doc).map_err(|e| RenderError::Yaml {
            document,
            message: e.to_string(),
        })?;
        let items = match value.get("kind").and_then(Value::as_str) {
            Some("List") => value
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            _ => vec![value],
        };
        for item in items {
            if item.get("kind").and_then(Value::as_str) != Some("RolloutRoute") {
                continue;
            }
            let route: RolloutRoute =
                serde_json::from_value(item).map_err(|e| RenderError::Route {
                    document,
                    message: e.to_string(),
                })?;
            routes.push(route);
        }
    }
    if routes.is_empty() {
        return Err(RenderError::NoRoute);
    }
    Ok(routes)
}

/// YAML documents split at `---` lines; documents with nothing but comments are dropped.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("---")
            && (rest.trim().is_empty() || rest.trim_start().starts_with('#'))
        {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "...")
    });
    docs
}

/// The status the operator would have written at `position`, and a description of it.
fn status_at(
    route: &RolloutRoute,
    position: &Position,
) -> Result<(RolloutRouteStatus, String), RenderError> {
    let name = route.metadata.name.clone().unwrap_or_default();
    let spec = &route.spec;
    spec.validate().map_err(|e| RenderError::Invalid {
        name: name.clone(),
        message: e.to_string(),
    })?;
    let saved = route.status.clone().unwrap_or_default();
    if position.step.is_none() && position.from.is_none() {
        let what = match &saved.stable_backend {
            None => format!("first apply: {} serves all traffic", spec.backend),
            Some(_) => "as its status describes".to_owned(),
        };
        return Ok((saved, what));
    }
    let stable = position
        .from
        .clone()
        .or(saved.stable_backend)
        .ok_or_else(|| RenderError::NoStable { name: name.clone() })?;
    if stable == spec.backend {
        return Err(RenderError::NothingToRollOut {
            name,
            from: stable.to_string(),
        });
    }
    let step = position.step.unwrap_or(0);
    let done = |what: String| {
        let status = RolloutRouteStatus {
            phase: Some(Phase::Healthy),
            stable_backend: Some(spec.backend.clone()),
            desired_backend: Some(spec.backend.clone()),
            previous_backend: Some(stable.clone()),
            ..RolloutRouteStatus::default()
        };
        (status, what)
    };
    let rolling = |weight: Option<u32>, what: String| {
        let status = RolloutRouteStatus {
            phase: Some(Phase::Progressing),
            stable_backend: Some(stable.clone()),
            desired_backend: Some(spec.backend.clone()),
            current_step: weight.map(|_| step),
            canary_weight: Some(weight.unwrap_or(0)),
            ..RolloutRouteStatus::default()
        };
        (status, what)
    };
    let target = &spec.backend;
    Ok(match spec.strategy.get() {
        Some(Strategy::Canary(canary)) => {
            let n = canary.steps.len();
            let index = usize::try_from(step).unwrap_or(usize::MAX);
            if index >= n {
                done(format!(
                    "after all {n} steps: {target} serves all traffic (was {stable})"
                ))
            } else {
                // Weight steps act at once, so a setWeight step shows its own weight.
                let weight = canary.steps[..=index]
                    .iter()
                    .rev()
                    .find_map(|s| match s {
                        CanaryStep::SetWeight(w) => Some(*w),
                        CanaryStep::Pause(_) => None,
                    })
                    .unwrap_or(0);
                let this = match &canary.steps[index] {
                    CanaryStep::SetWeight(w) => format!("setWeight {w}"),
                    CanaryStep::Pause(p) => match &p.duration {
                        Some(d) => format!("pause {d}"),
                        None => "pause until promoted".to_owned(),
                    },
                };
                rolling(
                    Some(weight),
                    format!(
                        "step {step} of {n} ({this}): {target} receives {weight}% of requests, \
                         {stable} the rest"
                    ),
                )
            }
        }
        Some(Strategy::BlueGreen(_)) if step == 0 => rolling(
            None,
            format!("before the switch: the preview hosts reach {target}, the hosts {stable}"),
        ),
        Some(Strategy::BlueGreen(_)) => done(format!(
            "after the switch: {target} serves all traffic (was {stable})"
        )),
        // validate() refused the others.
        None => rolling(None, String::new()),
    })
}

/// The Ingresses for `route` at `position`, with what the position means.
pub fn ingresses(
    route: &RolloutRoute,
    position: &Position,
) -> Result<(Vec<Ingress>, String), RenderError> {
    let (status, what) = status_at(route, position)?;
    Ok((desired_ingresses(route, &status), what))
}

/// The whole output of `render`: per route a comment, then its Ingresses as YAML documents.
pub fn render(text: &str, position: &Position) -> Result<String, RenderError> {
    let mut out = String::new();
    for route in routes(text)? {
        let name = route.metadata.name.clone().unwrap_or_default();
        let (ingresses, what) = ingresses(&route, position)?;
        out.push_str(&format!(
            "# RolloutRoute {name}, {what}: {} Ingress{}\n",
            ingresses.len(),
            if ingresses.len() == 1 { "" } else { "es" }
        ));
        for ingress in &ingresses {
            let yaml =
                serde_saphyr::to_string(ingress).map_err(|e| RenderError::Output(e.to_string()))?;
            out.push_str("---\n");
            out.push_str(&yaml);
            if !yaml.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = r#"
# a comment before the first document
---
apiVersion: switchyard.dev/v1alpha1
kind: RolloutRoute
metadata: {name: shop, namespace: web}
spec:
  hosts: [shop.example.com]
  backend: {service: shop-v2, port: 80}
  strategy:
    canary:
      steps:
      - setWeight: 10
      - pause: {duration: 30s}
      - setWeight: 50
      - pause: {}
      match:
        header: {name: X-Canary, value: "true"}
---
apiVersion: v1
kind: Service
metadata: {name: shop-v2}
"#;

    fn names(ingresses: &[Ingress]) -> Vec<String> {
        ingresses
            .iter()
            .filter_map(|i| i.metadata.name.clone())
            .collect()
    }

    fn annotation(ingress: &Ingress, key: &str) -> Option<String> {
        ingress
            .metadata
            .annotations
            .as_ref()?
            .get(&format!("nginx.ingress.kubernetes.io/{key}"))
            .cloned()
    }

    fn service(ingress: &Ingress) -> Option<String> {
        let rule = ingress.spec.as_ref()?.rules.as_ref()?.first()?;
        let path = rule.http.as_ref()?.paths.first()?;
        Some(path.backend.service.as_ref()?.name.clone())
    }

    fn at(step: u32) -> Position {
        Position {
            step: Some(step),
            from: parse_backend("shop-v1:80").ok(),
        }
    }

    #[test]
    fn a_new_route_is_one_ingress_to_its_backend() {
        let route = routes(ROUTE).expect("route").remove(0);
        let (children, what) = ingresses(&route, &Position::default()).expect("render");
        assert_eq!(names(&children), ["shop"]);
        assert_eq!(service(&children[0]).as_deref(), Some("shop-v2"));
        assert_eq!(what, "first apply: shop-v2:80 serves all traffic");
    }

    #[test]
    fn each_step_has_its_weight() {
        let route = routes(ROUTE).expect("route").remove(0);
        for (step, weight) in [(0, "10"), (1, "10"), (2, "50"), (3, "50")] {
            let (children, _) = ingresses(&route, &at(step)).expect("render");
            assert_eq!(names(&children), ["shop", "shop-canary"], "step {step}");
            assert_eq!(service(&children[0]).as_deref(), Some("shop-v1"));
            assert_eq!(service(&children[1]).as_deref(), Some("shop-v2"));
            let canary = &children[1];
            assert_eq!(annotation(canary, "canary").as_deref(), Some("true"));
            assert_eq!(
                annotation(canary, "canary-weight").as_deref(),
                Some(weight),
                "step {step}"
            );
            assert_eq!(
                annotation(canary, "canary-by-header").as_deref(),
                Some("X-Canary")
            );
            assert_eq!(
                annotation(canary, "canary-by-header-value").as_deref(),
                Some("true")
            );
        }
        let (children, what) = ingresses(&route, &at(4)).expect("render");
        assert_eq!(names(&children), ["shop"]);
        assert_eq!(service(&children[0]).as_deref(), Some("shop-v2"));
        assert_eq!(
            what,
            "after all 4 steps: shop-v2:80 serves all traffic (was shop-v1:80)"
        );
    }

    #[test]
    fn the_output_is_yaml_that_reads_back_as_ingresses() {
        let out = render(ROUTE, &at(2)).expect("render");
        assert!(
            out.starts_with(
                "# RolloutRoute shop, step 2 of 4 (setWeight 50): shop-v2:80 receives 50% of \
                 requests, shop-v1:80 the rest: 2 Ingresses\n---\n"
            ),
            "{out}"
        );
        let docs = documents(&out);
        assert_eq!(docs.len(), 2, "{out}");
        for doc in docs {
            let ingress: Ingress = serde_saphyr::from_str(&doc).expect("an Ingress");
            assert_eq!(ingress.metadata.namespace.as_deref(), Some("web"));
            assert!(doc.contains("apiVersion: networking.k8s.io/v1"), "{doc}");
            assert!(doc.contains("kind: Ingress"), "{doc}");
        }
    }

    #[test]
    fn blue_green_before_and_after_the_switch() {
        let text = r#"
apiVersion: switchyard.dev/v1alpha1
kind: RolloutRoute
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  backend: {service: shop-v2, port: http}
  strategy:
    blueGreen: {previewHosts: [preview.shop.example.com]}
status:
  stableBackend: {service: shop-v1, port: http}
"#;
        let route = routes(text).expect("route").remove(0);
        let before = Position {
            step: Some(0),
            from: None,
        };
        let (children, _) = ingresses(&route, &before).expect("render");
        assert_eq!(names(&children), ["shop", "shop-preview"]);
        assert_eq!(service(&children[0]).as_deref(), Some("shop-v1"));
        assert_eq!(service(&children[1]).as_deref(), Some("shop-v2"));
        let after = Position {
            step: Some(1),
            from: None,
        };
        let (children, _) = ingresses(&route, &after).expect("render");
        assert_eq!(names(&children), ["shop"]);
        assert_eq!(service(&children[0]).as_deref(), Some("shop-v2"));
    }

    #[test]
    fn mistakes_are_explained() {
        let route = routes(ROUTE).expect("route").remove(0);
        let no_from = Position {
            step: Some(1),
            from: None,
        };
        assert_eq!(
            ingresses(&route, &no_from).map(|_| ()),
            Err(RenderError::NoStable {
                name: "shop".into()
            })
        );
        let same = Position {
            step: Some(1),
            from: parse_backend("shop-v2:80").ok(),
        };
        assert!(matches!(
            ingresses(&route, &same),
            Err(RenderError::NothingToRollOut { .. })
        ));
        assert_eq!(
            parse_backend("shop-v1"),
            Err(RenderError::BadFrom("shop-v1".into()))
        );
        assert_eq!(
            parse_backend("shop-v1:http").map(|b| b.to_string()),
            Ok("shop-v1:http".into())
        );
        assert_eq!(routes("kind: Service\n").err(), Some(RenderError::NoRoute));
        let invalid = ROUTE.replace("setWeight: 50", "setWeight: 150");
        let route = routes(&invalid).expect("parses").remove(0);
        let err = ingresses(&route, &Position::default()).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "RolloutRoute shop: invalid spec: spec.strategy.canary.steps[2].setWeight 150 is \
             above 100"
        );
    }
}
