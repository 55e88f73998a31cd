//! Which Ingresses are ours: by IngressClass controller, by the legacy annotation, or class-less
//! when our class is the default (or `--watch-ingress-without-class`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use super::CompileOptions;

pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// `Ok(())` when we serve this Ingress, otherwise why not (for an Info line).
pub fn select(
    ingress: &Ingress,
    classes: &BTreeMap<String, Arc<IngressClass>>,
    opts: &CompileOptions,
) -> Result<(), String> {
    let legacy = ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION));
    // The annotation predates ingressClassName and ingress-nginx lets it win when both are set.
    if let Some(class) = legacy {
        return if *class == opts.ingress_class {
            Ok(())
        } else {
            Err(format!(
                "annotation {LEGACY_CLASS_ANNOTATION}={class:?} is not --ingress-class {:?}",
                opts.ingress_class
            ))
        };
    }
    let class_name = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    match class_name {
        Some(name) => match classes.get(name) {
            Some(class) if is_our_controller(class, opts) => Ok(()),
            Some(class) => Err(format!(
                "IngressClass {name} belongs to controller {:?}, not {:?}",
                controller_of(class),
                opts.controller_class
            )),
            None => Err(format!("IngressClass {name} does not exist")),
        },
        None if opts.watch_ingress_without_class => Ok(()),
        None if classes
            .values()
            .any(|c| is_our_controller(c, opts) && is_default_class(c)) =>
        {
            Ok(())
        }
        None => Err("no class, and none of our IngressClasses is the default \
             (set ingressclass.kubernetes.io/is-default-class or --watch-ingress-without-class)"
            .to_owned()),
    }
}

fn controller_of(class: &IngressClass) -> &str {
    class
        .spec
        .as_ref()
        .and_then(|s| s.controller.as_deref())
        .unwrap_or("")
}

fn is_our_controller(class: &IngressClass, opts: &CompileOptions) -> bool {
    controller_of(class) == opts.controller_class
}

fn is_default_class(class: &IngressClass) -> bool {
    class
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}
